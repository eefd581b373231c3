"""Process signals for the long-running workers: SIGTERM and Ctrl-C ask for a clean stop."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

logger = logging.getLogger("outbox.shutdown")


def stop_on_signals(stop: Callable[[], None], *, worker: str) -> None:
    """Call `stop` on SIGTERM or SIGINT; a second signal leaves the default handling to end it."""

    def handle(signum, frame) -> None:
        logger.info("%s.stopping signal=%s", worker, signal.Signals(signum).name)
        stop()
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
