"""Human durations for operator commands: `90s`, `15m`, `12h`, `7d`, `2w`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """`7d` -> 7 days; raise ValueError naming the accepted form otherwise."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 12h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
