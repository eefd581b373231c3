"""Values of operator commands' arguments: ISO 8601 moments (naive ones taken as UTC) and human
durations (`90s`, `15m`, `12h`, `7d`, `2w`)."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


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


def moment_argument(text: str) -> datetime:
    """`parse_moment` as an argparse `type`: a bad value is a usage error naming the accepted form."""
    try:
        return parse_moment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_duration(text: str) -> timedelta:
    """`7d` -> 7 days; raise ValueError naming the accepted form otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
