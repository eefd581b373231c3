"""kombu's filesystem transport with its message files named in publish order, and answering as
RabbitMQ would where the service asks whether a queue or the folders are there.

kombu names a message file by a millisecond clock and a random id, and a consumer reads the
files in name order: events published within one millisecond came back shuffled (a test shows
it), which would break the per-message order the relay keeps. Here the name starts with the
machine's monotonic clock in nanoseconds, zero-padded so that names sort by it; the clock is
one for all processes, so a successor the relay publishes after its predecessor's batch
committed sorts after it whichever relay publishes it. The file is written under a name no
queue matches and renamed into place, so a consumer never reads a half-written message.

Two more differences from kombu's: a passive queue declare finds only a queue that is there,
raising NOT_FOUND (404) for any other as RabbitMQ does (kombu's finds any name,
so a replay to a mistyped queue or the ops page's depth of a queue nobody declared said "0"),
and a connection is made only when the folders can be used (kombu's connects to any path, so
/readyz said ready with the queues' folder gone).
"""

from __future__ import annotations

import os
import tempfile
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

    def _has_queue(self, queue, **kwargs):
        """Whether `queue` is there: some exchange binds it (what a passive declare asks).

        The transport keeps no list of queues, only each exchange's binding table, in the
        control folder that every process shares; our topology binds every queue it declares,
        so a queue some process declared is one a table names.
        """
        for table in self.control_folder.glob("*.exchange"):
            exchange = table.name.removesuffix(".exchange")
            if any(binding.queue == queue for binding in self.get_table(exchange)):
                return True
        return False


class Transport(filesystem.Transport):
    Channel = Channel

    def establish_connection(self):
        """Connect only when the message and control folders can be listed and written to."""
        options = self.client.transport_options
        # kombu's defaults when the options name no folder (the settings always name them).
        folders = {
            options.get("data_folder_in", "data_in"),
            options.get("data_folder_out", "data_out"),
            options.get("control_folder", "control"),
        }
        for folder in sorted(map(str, folders)):
            try:
                with os.scandir(folder):
                    pass
                # Unnamed where the platform allows it; either way no queue's name matches it.
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                # An OSError, as a broker's socket that cannot connect raises: an outage to the
                # relay and the consumer, "not ready" to /readyz.
                raise ConnectionError(f"the broker folder {folder} cannot be used: {type(exc).__name__}") from exc
        return super().establish_connection()


def register() -> None:
    """Make `filesystem://` URLs use this transport in this process (kombu resolves by alias)."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
