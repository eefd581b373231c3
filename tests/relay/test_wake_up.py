"""A running relay wakes for every commit behind its wake gate, long before its poll.

Every relay here polls only every 120 s: an event that waits for the poll fails its deadline.
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading

import pytest
from django.db import connections, transaction

from messaging.models import Message
from outbox import wake_gate
from outbox.models import OutboxEvent
from relay.relay import BUSY_BATCH, Relay
from relay.wakeup import CommitListener
from tests.helpers import other_database_session, run_in_thread, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

POLL_NEVER = 120.0


@contextlib.contextmanager
def running(relay: Relay):
    runner = run_in_thread(relay)
    try:
        yield relay
    finally:
        relay.stop()
        runner.join(15)
    assert not runner.is_alive()


def published(message: Message) -> bool:
    return OutboxEvent.objects.filter(aggregate_id=str(message.pk), published_at__isnull=False).exists()


def sleeping_gate_holders() -> list[int]:
    """Backend pids holding a closed wake gate in this database: its relays asleep (advisory locks
    are per database; another database's relays are another suite's)."""
    with other_database_session() as observer:
        rows = observer.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND mode = 'ExclusiveLock'"
            " AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (wake_gate.GATE_LOCK_CLASS,),
        ).fetchall()
    return [pid for (pid,) in rows]


class CommitsBeforeClosingTheGate(CommitListener):
    """A listener during whose first gate-closing another transaction commits a message."""

    def __init__(self, write) -> None:
        super().__init__()
        self._write = write

    def close_gate(self) -> bool:
        if self._write is not None:
            write, self._write = self._write, None
            write()  # the relay's empty claim is over, its gate still open: no notice is sent
        return super().close_gate()


def test_an_event_committed_just_before_the_gate_closes_is_published_long_before_the_poll(alice, bob, topology):
    written: list[Message] = []

    def write() -> None:
        with transaction.atomic():
            written.append(Message.objects.create(sender=alice, receiver=bob, content="between claim and gate"))

    with running(Relay(poll_interval=POLL_NEVER, listener=CommitsBeforeClosingTheGate(write))):
        wait_until(lambda: written, what="the relay to reach its gate")
        wait_until(lambda: published(written[0]), timeout=10, what="the event claimed behind the closed gate")


def test_every_commit_wakes_the_relay_while_other_writers_commit_all_the_time(alice, bob, topology):
    stop_writing = threading.Event()

    def write_in_the_background() -> None:
        rng = random.Random(7)
        try:
            while not stop_writing.is_set():
                Message.objects.create(sender=bob, receiver=alice, content="background")
                stop_writing.wait(rng.uniform(0, 0.004))  # commits land at every point of the relay's cycle
        finally:
            connections.close_all()

    with running(Relay(poll_interval=POLL_NEVER)):
        background = threading.Thread(target=write_in_the_background)
        background.start()
        try:
            # One at a time: each message needs a wake-up of its own, whatever the relay was doing.
            for i in range(60):
                message = Message.objects.create(sender=alice, receiver=bob, content=f"probe {i}")
                wait_until(lambda m=message: published(m), timeout=10, interval=0.002, what=f"probe {i} published")
        finally:
            stop_writing.set()
            background.join(15)
        wait_until(
            lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(),
            timeout=10,
            what="the background writer's events published",
        )


def test_a_long_writer_transaction_does_not_hold_back_other_writers_events(alice, bob, topology, caplog):
    inserted, commit = threading.Event(), threading.Event()
    long_running: list[Message] = []

    def write_slowly() -> None:
        try:
            with transaction.atomic():
                long_running.append(Message.objects.create(sender=bob, receiver=alice, content="long"))
                Message.objects.filter(pk=long_running[0].pk).exists()  # its event is inserted now
                inserted.set()
                commit.wait(30)
        finally:
            connections.close_all()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        assert inserted.wait(10)
        # The writer holds every gate shared until it commits: the relay cannot close its own.
        with caplog.at_level(logging.DEBUG, logger="relay.relay"), running(Relay(poll_interval=POLL_NEVER)):
            wait_until(lambda: "relay.wake_gate_busy" in caplog.text, what="the relay to find its gate held")
            quick = Message.objects.create(sender=alice, receiver=bob, content="quick")
            wait_until(lambda: published(quick), timeout=10, what="another writer's event published meanwhile")
            commit.set()
            writer.join(15)
            wait_until(lambda: published(long_running[0]), timeout=10, what="the long transaction's event")
            wait_until(sleeping_gate_holders, what="the relay asleep behind its gate once the writer is done")
    finally:
        commit.set()
        writer.join(15)


def test_a_relay_whose_listening_session_is_terminated_in_its_sleep_wakes_on_commit_again(alice, bob, topology):
    with running(Relay(poll_interval=POLL_NEVER, max_backoff=0.2)):
        asleep = wait_until(sleeping_gate_holders, what="the relay asleep behind its gate")
        with other_database_session() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (asleep[0],))
        # Its gate went with its session; the relay reconnects, claims and closes a new one.
        wait_until(lambda: sleeping_gate_holders() not in ([], asleep), what="the relay asleep on a new session")
        message = Message.objects.create(sender=alice, receiver=bob, content="after the outage")
        wait_until(lambda: published(message), timeout=10, what="the event published on commit")


def test_a_relay_finding_every_wake_slot_taken_says_so_and_takes_one_when_freed(caplog):
    listener = CommitListener()
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(other_database_session()) for _ in range(wake_gate.WAKE_SLOTS)]
        for session in sessions:
            wake_gate.take_slot(session)
        try:
            with caplog.at_level(logging.WARNING, logger="relay.wakeup"):
                listener.connect()
            assert "relay.no_wake_slot slots=4 woken_on_commit=false" in caplog.text
            assert listener.close_gate() is True  # sleeps ungated: the slot owners are woken
            assert sleeping_gate_holders() == []

            sessions[2].close()  # that relay stopped; its server session ends a moment later
            with caplog.at_level(logging.INFO, logger="relay.wakeup"):
                wait_until(
                    lambda: listener.close_gate() and sleeping_gate_holders(),
                    what="the listener to take the freed slot and close its gate",
                )
            assert "relay.wake_slot_taken slot=2 woken_on_commit=true" in caplog.text
        finally:
            listener.close()


def test_two_relay_processes_are_woken_on_commit_and_the_survivor_still_is_after_the_other_is_killed(
    alice, bob, topology, spawn_worker
):
    relays = [spawn_worker("relay", env={"RELAY_POLL_INTERVAL_SECONDS": str(POLL_NEVER)}) for _ in range(2)]
    wait_until(lambda: len(sleeping_gate_holders()) == 2, what="both relays asleep, each behind its own gate")
    first = Message.objects.create(sender=alice, receiver=bob, content="both asleep")
    wait_until(lambda: published(first), timeout=10, what="the event published on commit")

    wait_until(lambda: len(sleeping_gate_holders()) == 2, what="both relays asleep again")
    relays[0].send_signal(signal.SIGKILL)
    relays[0].wait(10)
    # Its session, and so its gate, ends with it; the other relay's gate still asks for a notice.
    wait_until(lambda: len(sleeping_gate_holders()) == 1, what="the killed relay's gate gone")
    second = Message.objects.create(sender=alice, receiver=bob, content="one asleep")
    wait_until(lambda: published(second), timeout=10, what="the survivor woken on commit")
    assert relays[1].poll() is None


def test_an_idle_relay_serves_the_broker_heartbeats_and_logs_no_outage(topology, settings, caplog):
    settings.BROKER_HEARTBEAT_SECONDS = 1
    caplog.set_level(logging.DEBUG)
    relay = Relay(poll_interval=POLL_NEVER)

    with running(relay):
        amqp_connection = wait_until(
            lambda: relay.publisher.is_connected and relay.publisher._connection.connection, what="the publisher"
        )
        # py-amqp's `bytes_recv` counts frames read. The broker sends a heartbeat every half
        # interval, and py-amqp gives up after two intervals without reading one: eight read are
        # several intervals of idling on one connection.
        received_before = amqp_connection.bytes_recv
        wait_until(
            lambda: amqp_connection.bytes_recv - received_before >= 8,
            timeout=20,
            what="eight of the broker's heartbeats read while idle",
        )
        assert relay.publisher._connection.connection is amqp_connection, "the same connection throughout"

    lines = [record.getMessage() for record in caplog.records]
    assert not [line for line in lines if "relay.outage" in line or "unexpected_error" in line]


def test_the_gate_stays_closed_while_events_trickle_in_and_opens_for_a_busy_batch(alice, bob, topology):
    relay = Relay(poll_interval=0.1)
    try:
        relay.work_once()  # nothing pending: the gate closes, for the claim behind it
        assert relay.listener.gate_closed
        assert sleeping_gate_holders()

        trickle = Message.objects.create(sender=alice, receiver=bob, content="one at a time")
        relay.work_once()
        assert published(trickle)
        assert relay.listener.gate_closed  # one event: still woken by each commit

        with transaction.atomic():
            burst = [Message.objects.create(sender=alice, receiver=bob, content="a burst") for _ in range(BUSY_BATCH)]
        relay.work_once()
        assert all(published(message) for message in burst)
        assert not relay.listener.gate_closed  # commits come faster than the relay: writers stop notifying
        assert sleeping_gate_holders() == []

        relay.work_once()  # a claim finds nothing: the gate closes again
        assert relay.listener.gate_closed
    finally:
        relay.disconnect()
