"""Failpoints: named places where the fault suite may kill a worker on purpose.

`OUTBOX_FAILPOINTS="relay.after_confirm=0.2,consumer.after_commit=0.1"` makes each named point
kill the process with SIGKILL with that probability when reached. Unset (always, outside the
fault suite) a failpoint is one dictionary lookup. SIGKILL, not an exception: nothing may run
after it, exactly as when the machine loses power there.
"""

from __future__ import annotations

import os
import random
import signal
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

KNOWN_FAILPOINTS = frozenset(
    {
        "relay.after_claim",  # batch locked, nothing published yet
        "relay.after_confirm",  # broker confirmed the batch, the database has not committed it
        "relay.after_commit",  # batch marked published
        "consumer.before_commit",  # notification written, transaction still open
        "consumer.after_commit",  # committed, not yet acked
    }
)


@cache
def _configured() -> dict[str, float]:
    points: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in settings.OUTBOX_FAILPOINTS.split(","))):
        name, _, probability = item.partition("=")
        if name not in KNOWN_FAILPOINTS:
            raise ImproperlyConfigured(f"unknown failpoint {name!r}; known: {sorted(KNOWN_FAILPOINTS)}")
        try:
            points[name] = float(probability or "1")
        except ValueError:
            raise ImproperlyConfigured(f"failpoint {name!r} needs a probability, not {probability!r}") from None
    return points


def failpoint(name: str) -> None:
    """Kill this process here, with the configured probability for `name`."""
    probability = _configured().get(name)
    if probability and random.random() < probability:  # noqa: S311 - fault injection, not security
        os.kill(os.getpid(), signal.SIGKILL)
