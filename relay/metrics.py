"""Prometheus metrics of the relay: how large its batches are and how fast the broker confirms them.

The outbox-wide counters (published, failed attempts, dead) live in `outbox/metrics.py`; the
relay feeds them once per committed batch, here.
"""

from __future__ import annotations

from prometheus_client import Histogram

from outbox.metrics import LATENCY_BUCKETS, record_publish_outcome

BATCH_SIZE = Histogram(
    "relay_batch_size_events",
    "Events claimed per non-empty batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
PUBLISH_CONFIRM_LATENCY = Histogram(
    "relay_publish_confirm_seconds",
    "From the start of a batch's publish to the broker's last confirm of it",
    buckets=(0.0005, *LATENCY_BUCKETS),
)


def record_batch(*, claimed: int, published: int, failed: int, dead: int, confirm_seconds: float) -> None:
    """Count one committed batch (call it after the commit: before it, nothing is published)."""
    BATCH_SIZE.observe(claimed)
    PUBLISH_CONFIRM_LATENCY.observe(confirm_seconds)
    record_publish_outcome(published=published, failed=failed, dead=dead)
