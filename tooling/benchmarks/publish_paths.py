"""`outbox_bench --publish-paths`: the relay's publish with `relay.amqp_frames` against py-amqp's own.

Both variants are `ConfirmingPublisher` with the same batching of confirms (publish the batch,
then wait until every delivery tag is settled); they differ only in how each event goes to the
socket: packed by `relay.amqp_frames.FrameWriter` and written a few dozen at a time, or by
py-amqp's `channel.basic_publish`, one write per event. Each round measures both, in an order
that alternates round by round, so that a change in the machine's load falls on both sides.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import amqp
from django.db import transaction

from outbox.envelope import OutgoingEvent
from outbox.services import claim_pending_events
from relay.amqp_publisher import ConfirmingPublisher
from relay.relay import Relay
from tooling.benchmarks.pipeline import PipelineBench


class BasicPublishWriter:
    """Writes each publish with py-amqp's `channel.basic_publish`: the library's own path."""

    def __init__(self, channel: amqp.Channel) -> None:
        self._channel = channel

    def publish(
        self, *, exchange: str, routing_key: str, mandatory: bool, properties: dict[str, Any], body: bytes
    ) -> None:
        self._channel.basic_publish(
            amqp.Message(body, **properties), exchange=exchange, routing_key=routing_key, mandatory=mandatory
        )

    def flush(self) -> None:
        """Nothing is held: `basic_publish` has written each event already."""


class BasicPublishPublisher(ConfirmingPublisher):
    """`ConfirmingPublisher` with py-amqp's `basic_publish` in place of the hand-packed frames."""

    def _batch_writer(self) -> BasicPublishWriter:
        return BasicPublishWriter(self._channel)


VARIANTS: dict[str, type[ConfirmingPublisher]] = {"frames": ConfirmingPublisher, "basic_publish": BasicPublishPublisher}


class PublishPathBench(PipelineBench):
    """Publish-only and relay throughput of each variant over `limit_rounds` alternated rounds."""

    def measure(self) -> None:
        events = self._sample_events(self.config.backlog)
        rounds: list[dict[str, float]] = []
        for number in range(self.config.limit_rounds):
            order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
            figures: dict[str, float] = {}
            for name in order:
                rate, cpu_us = self._publish_rate(VARIANTS[name], events)
                figures[f"publish.{name}.events_per_s"] = rate
                figures[f"publish.{name}.cpu_us_per_event"] = cpu_us
            for name in order:
                figures[f"relay.{name}.events_per_s"] = self._relay_rate(VARIANTS[name])
            rounds.append(figures)
            self.progress("publish paths", number + 1, self.config.limit_rounds)
        for name in rounds[0]:
            values = [figures[name] for figures in rounds]
            self.result.set(f"{name}.median", statistics.median(values))
            self.result.set(f"{name}.min", min(values))
            self.result.set(f"{name}.max", max(values))
        for phase in ("publish", "relay"):
            gains = [f[f"{phase}.frames.events_per_s"] / f[f"{phase}.basic_publish.events_per_s"] for f in rounds]
            self.result.set(f"{phase}.frames_vs_basic_publish.median", statistics.median(gains))
            self.result.set(f"{phase}.frames_vs_basic_publish.min", min(gains))
            self.result.set(f"{phase}.frames_vs_basic_publish.max", max(gains))

    def _sample_events(self, n: int) -> list[OutgoingEvent]:
        """`n` events as the relay claims them (the backlog's own), left pending and then removed."""
        self._make_backlog(n)
        with transaction.atomic():
            events = claim_pending_events(n)
            transaction.set_rollback(True)
        self._run_relays_once(1)
        self._purge_queue()
        return events

    def _publish_rate(self, variant: type[ConfirmingPublisher], events: Sequence[OutgoingEvent]) -> tuple[float, float]:
        """Events/s and this process's CPU µs per event publishing `events` in relay-sized batches."""
        publisher = variant(topology=self.topology)
        publisher.connect()
        size = self.config.batch_size
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, len(events), size):
                outcome = publisher.publish_batch(events[start : start + size])
                if outcome.failed:
                    raise RuntimeError(f"the bench's events failed to publish: {next(iter(outcome.failed.values()))}")
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            publisher.close()
        self._purge_queue()
        return len(events) / wall, cpu / len(events) * 1e6

    def _relay_rate(self, variant: type[ConfirmingPublisher]) -> float:
        """Events/s of an in-process relay with `variant` draining a fresh backlog."""
        self._make_backlog(self.config.backlog)
        self._settle_server()
        relay = Relay(publisher=variant(topology=self.topology), batch_size=self.config.batch_size)
        relay.publisher.connect()
        try:
            started = time.perf_counter()
            result = relay.drain()
            elapsed = time.perf_counter() - started
        finally:
            relay.publisher.close()
        self._purge_queue()
        return result.published / elapsed
