"""`python manage.py send_limit_bench`: the send limit's counters, cost per request and exactness."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tooling.benchmarks.send_limit import measure


class Command(BaseCommand):
    help = (
        "Time the send limit's PostgreSQL counter and DRF's cache-based throttle per request, and count "
        "what each admits of a concurrent burst at 3x the limit. Writes only rows it deletes again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--requests", type=int, default=2000, help="requests per timed round")
        parser.add_argument("--threads", type=int, default=16, help="concurrent clients in the burst")

    def handle(self, *args, requests: int, threads: int, **options) -> None:
        for figures in measure(requests=requests, threads=threads):
            self.stdout.write(
                f"counter={figures.name} us_per_request={figures.microseconds_per_request} "
                f"burst_limit={figures.burst_limit} burst_requests={figures.burst_requests} "
                f"burst_admitted={figures.burst_admitted}"
            )
