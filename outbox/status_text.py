"""`outbox.status` snapshots drawn for a terminal: one screen, rates as sparklines."""

from __future__ import annotations

import math
from datetime import datetime

from outbox.partitions import PartitionReport
from outbox.status import OpsSnapshot, Rates

SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def duration(seconds: float) -> str:
    """A short human duration: `4.2 s`, `3 min 5 s`, `2 h 3 min`, `3 d 4 h`."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60)} s"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


def sparkline(values: list[float]) -> str:
    """One block character per value, scaled to the largest; only zero gets the lowest block."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK_LEVELS[0] * len(values)
    highest = len(SPARK_LEVELS) - 1
    # Rounded up, so that a little traffic never looks like none.
    return "".join(SPARK_LEVELS[min(highest, math.ceil(value / top * highest))] for value in values)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"{moment:%H:%M:%S} ({duration(max(0.0, (now - moment).total_seconds()))} ago)"


def _rate_lines(rates: Rates) -> list[str]:
    lines = []
    minutes = len(rates.buckets) * rates.bucket_seconds // 60
    for field in ("published", "consumed"):
        per_second = [getattr(bucket, field) / rates.bucket_seconds for bucket in rates.buckets]
        lines.append(
            f"  {field:<10} {sparkline(per_second)}  max {max(per_second, default=0):.1f}/s "
            f"(per {rates.bucket_seconds} s, last {minutes} min)"
        )
    return lines


def render_status(snapshot: OpsSnapshot) -> str:
    """The snapshot as plain text lines for `outbox_status`."""
    now = snapshot.taken_at
    backlog = snapshot.backlog
    rates = snapshot.rates
    lines = [
        f"Outbox status at {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Backlog     pending {backlog.pending}   oldest pending "
        f"{duration(backlog.oldest_pending_age_seconds) if backlog.pending else '-'}   dead {backlog.dead}",
        f"Rates       published {rates.per_second('published'):.1f}/s   consumed {rates.per_second('consumed'):.1f}/s"
        "   (last minute)",
        *_rate_lines(rates),
        "",
        f"Workers ({sum(worker.alive for worker in snapshot.workers)} alive of {len(snapshot.workers)})",
    ]
    for worker in snapshot.workers:
        lines.append(
            f"  {worker.kind:<24} {worker.worker_id}  {worker.hostname}/{worker.pid}  "
            f"beat {duration(worker.silent_seconds)} ago  {_worker_state(worker)}"
        )
        if worker.last_error:
            lines.append(f"  {'':<24} last error {_ago(worker.last_error_at, now)}: {worker.last_error}")
    if not snapshot.workers:
        lines.append("  no relay or consumer has a heartbeat")

    shown = len(snapshot.dead_events)
    lines += ["", f"Dead events ({backlog.dead}" + (f", newest {shown} shown)" if backlog.dead > shown else ")")]
    for event in snapshot.dead_events:
        lines.append(
            f"  #{event.id:<8} {event.event_type:<20} {event.aggregate_type}:{event.aggregate_id}  "
            f"attempts={event.attempts}  died {_ago(event.dead_at, now)}  error={event.last_error}"
            + (f"  trace={event.trace_id}" if event.trace_id else "")
        )
    if backlog.dead:
        lines.append("  send them again with: manage.py outbox_retry (or the ops dashboard)")

    broker = snapshot.broker
    lines += ["", f"Dead-letter queues (broker {broker.url})"]
    if not broker.reachable:
        lines.append(f"  broker unreachable: {broker.error}")
    for queue in broker.dead_letter_queues:
        depth = f"{queue.depth} messages" if queue.depth is not None else f"unknown: {queue.error}"
        lines.append(f"  {queue.consumer:<16} {queue.queue}  {depth}")

    lines += ["", *partition_lines(snapshot.partitions)]

    lines += ["", "Recent errors (last hour)"]
    for error in snapshot.recent_errors:
        trace = f"  trace={error.trace_id}" if error.trace_id else ""
        lines.append(f"  {_ago(error.at, now)}  {error.source}  {error.error}{trace}")
    if not snapshot.recent_errors:
        lines.append("  none")
    return "\n".join(lines)


def _worker_state(worker) -> str:
    if not worker.alive:
        return "STALLED"
    return f"FAILING ({worker.consecutive_failures} failures in a row)" if worker.failing else "alive"


def partition_lines(report: PartitionReport) -> list[str]:
    """The partitions section: days ready ahead, partitions kept past retention and why, DEFAULT rows."""
    ahead = "   ".join(f"{table} {days} d" for table, days in report.days_ahead.items())
    lines = [f"Partitions  ready ahead: {ahead or '-'}"]
    for name, reason in report.kept.items():
        lines.append(f"  kept past retention: {name} {reason} (send or retry them; outbox_prune drops it then)")
    for table, rows in report.default_rows.items():
        if rows:
            lines.append(f"  {table}_default holds {rows} rows outside every time partition (docs/operations.md)")
    return lines
