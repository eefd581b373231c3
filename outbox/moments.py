"""Moments for operator commands: ISO 8601 dates and times, naive ones taken as UTC."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


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
