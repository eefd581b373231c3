"""What a log line may show of what a sender chose: short tokens, never content or an error's text."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

# An event type or a message id as our own services write them.
_PRINTABLE_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def quoted(value: object) -> str:
    """`value` quoted when it is a short printable token, else a placeholder."""
    return repr(value) if isinstance(value, str) and _PRINTABLE_TOKEN.fullmatch(value) else "(not shown)"


def message_id(message) -> str:
    """A kombu delivery's AMQP message id when it is a short printable token, else "-"."""
    value = (message.properties or {}).get("message_id")
    return value if isinstance(value, str) and _PRINTABLE_TOKEN.fullmatch(value) else "-"


def raised_at(exc: BaseException) -> str:
    """Where `exc` was raised (file, function, line): a bug's place without the error's text."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "-"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.name}:{frame.lineno}"
