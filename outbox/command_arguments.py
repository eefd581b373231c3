"""Values of operator commands' arguments: ISO 8601 moments (naive ones taken as UTC), human
durations (`90s`, `15m`, `12h`, `7d`, `2w`) and batch sizes.

Each has a parser that raises ValueError naming the accepted form, and an argparse `type` that
turns that into a usage error, so a mistyped value never reaches the database as a traceback.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*$")
_BATCH_SIZE = re.compile(r"[0-9]{1,9}")

# Longer than any retention or run is meant to last, and short enough that now minus it is still
# a date Python and PostgreSQL can hold (Python's end at year 1).
LONGEST_DURATION = timedelta(days=36525)
# One batch is one transaction or one page held in memory: past this it is no longer a batch.
LARGEST_BATCH_SIZE = 100_000

T = TypeVar("T")


def parse_moment(text: str) -> datetime:
    """`2026-11-24`, `2026-11-24T06:00`, `2026-11-24T06:00:00+01:00` or `...Z` -> an aware datetime.

    Raise ValueError naming the accepted form otherwise.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or time like 2026-11-24, 2026-11-24T06:00 or 2026-11-24T06:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_duration(text: str) -> timedelta:
    """`7d` -> 7 days; raise ValueError naming the accepted form, or the longest, otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h, 7d or 2w")
    try:
        duration = timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    except OverflowError:
        duration = None
    if duration is None or duration > LONGEST_DURATION:
        raise ValueError(f"{text!r} is longer than {LONGEST_DURATION.days}d (100 years), the longest duration accepted")
    return duration


def parse_batch_size(text: str) -> int:
    """`500` -> 500; raise ValueError unless it is a whole number from 1 to `LARGEST_BATCH_SIZE`."""
    stripped = text.strip()
    if not _BATCH_SIZE.fullmatch(stripped) or not 1 <= int(stripped) <= LARGEST_BATCH_SIZE:
        raise ValueError(f"{text!r} is not a batch size: a whole number from 1 to {LARGEST_BATCH_SIZE:,}")
    return int(stripped)


def as_argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """`parse` as an argparse `type`: its ValueError becomes a usage error with the same message."""

    def argument(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return argument


moment_argument = as_argument_type(parse_moment)
duration_argument = as_argument_type(parse_duration)
batch_size_argument = as_argument_type(parse_batch_size)
