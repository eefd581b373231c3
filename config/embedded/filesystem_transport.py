"""kombu's filesystem transport with its message files named in publish order.

kombu names a message file by a millisecond clock and a random id, and a consumer reads the
files in name order: events published within one millisecond came back shuffled (a test shows
it), which would break the per-message order the relay keeps. Here the name starts with the
machine's monotonic clock in nanoseconds, zero-padded so that names sort by it; the clock is
one for all processes, so a successor the relay publishes after its predecessor's batch
committed sorts after it whichever relay publishes it. The file is written under a name no
queue matches and renamed into place, so a consumer never reads a half-written message.
"""

from __future__ import annotations

import os
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: a file named in publish order."""
        name = f"{time.monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        # A leading dot: kombu matches a file to its queue by what follows the first dot.
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as file:
                file.write(dumps(payload).encode())
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """Make `filesystem://` URLs use this transport in this process (kombu resolves by alias)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
