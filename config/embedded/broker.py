"""The serverless broker: kombu's filesystem transport in a local folder.

Used when BROKER_URL is unset. Each message is a file in one shared folder, so the relay, the
consumer and anyone else on this machine reach the same queues without a broker process.

Why this transport, on the evidence of kombu 5.7 on our machine:
- The filesystem transport keeps every exchange's binding table in its control folder, topic
  exchanges included: a message published by one process is routed by bindings another process
  declared (checked: declare in one process, publish in a second, consume in a third). kombu's
  other virtual transports keep bindings in the memory of the process that declared them; the
  relay declares the whole topology itself, but the consumer's dead-letter publisher (its own
  connection) would find no bindings there and drop what it republishes.
- It needs nothing installed: the SQLAlchemy transport (on SQLite or on the embedded
  PostgreSQL) needs SQLAlchemy, and without row locks on SQLite two consumers can take one
  message.
- Its limits, which suit a development machine: a publish returns once the file is written
  (no confirms; no fsync); an unroutable publish is silently dropped, so the relay looks the
  bindings up first (`relay.filesystem_publisher`); a delivery taken by a consumer that is killed
  before it acks is lost (acks are settled in the consumer's memory); queues know no delivery
  count, so a failing handler is retried without the quorum queue's bound.
- kombu's file names shuffle what is published within one millisecond; ours keep publish order
  (`config.embedded.filesystem_transport`, registered for `filesystem://` by the settings).
"""

from __future__ import annotations

from pathlib import Path

# kombu's name for the transport; a BROKER_URL of this scheme uses the folder below.
SCHEME = "filesystem"
URL = f"{SCHEME}://"
# How often an idle consumer looks at the folder: the latency a delivery may wait.
POLLING_INTERVAL_SECONDS = 0.1


def transport_options(folder: Path) -> dict:
    """kombu transport options for the queues in `folder` (created when missing)."""
    messages = Path(folder).resolve() / "messages"
    control = Path(folder).resolve() / "control"
    messages.mkdir(parents=True, exist_ok=True)
    control.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(messages),
        "data_folder_out": str(messages),
        "control_folder": str(control),
        "polling_interval": POLLING_INTERVAL_SECONDS,
    }
