"""`python manage.py outbox_chaos`: the mixed-fault soak against the configured services."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from outbox.command_arguments import parse_duration
from tooling.chaos import ChaosPlan, ChaosRun


def _seconds(text: str) -> float | None:
    if text in ("0", "never", "off"):
        return None
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Write messages while relays and consumers are killed (and optionally cut off from the broker or "
        "the database), then check every message has exactly one notification. Runs on a private broker "
        "namespace; exits 1 if anything was lost, doubled, stuck or reordered."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--messages", type=int, default=20000)
        parser.add_argument("--relays", type=int, default=3)
        parser.add_argument("--consumers", type=int, default=2)
        parser.add_argument(
            "--partitions",
            type=int,
            default=1,
            help="partition queues the consumers share (CONSUMER_PARTITIONS of every worker); 1: one queue",
        )
        parser.add_argument("--writers", type=int, default=4, help="writer threads")
        parser.add_argument("--kill-every", default="2s", help="SIGKILL a random worker this often (or 'never')")
        parser.add_argument("--cut-broker-every", default="never", help="cut every broker connection this often")
        parser.add_argument("--terminate-db-every", default="never", help="end every worker's database session")
        parser.add_argument(
            "--failpoints",
            default="relay.after_confirm=0.02,consumer.after_commit=0.02",
            help="failpoints during the run (see outbox/failpoints.py); '' for none",
        )
        parser.add_argument("--settle-timeout", default="10m", help="how long the backlog may take to drain")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **options) -> None:
        for name in ("messages", "relays", "consumers", "partitions", "writers"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        plan = ChaosPlan(
            messages=options["messages"],
            relays=options["relays"],
            consumers=options["consumers"],
            partitions=options["partitions"],
            writers=options["writers"],
            kill_every=_seconds(options["kill_every"]),
            cut_broker_every=_seconds(options["cut_broker_every"]),
            terminate_db_every=_seconds(options["terminate_db_every"]),
            failpoints=options["failpoints"],
            settle_timeout=_seconds(options["settle_timeout"]) or 600.0,
            seed=options["seed"],
        )
        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = tqdm(total=total, desc=phase, unit="msg", file=self.stderr)
            bar.update(done - bar.n)

        try:
            run = ChaosRun(plan, progress=progress)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        report = run.run()
        for bar in bars.values():
            bar.close()
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(f"worker logs           {report.worker_logs}")
        if not report.ok:
            raise CommandError("the soak found lost, doubled, stuck or reordered messages")
