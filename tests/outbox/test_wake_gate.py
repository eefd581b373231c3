"""The wake gate: writers notify only while a relay sleeps behind its gate, and never miss one."""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import connection, connections, transaction

from outbox import wake_gate
from outbox.models import NOTIFY_CHANNEL, OutboxEvent
from tests.helpers import append_read_events, other_database_session, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def append_event() -> OutboxEvent:
    return append_read_events(1)[0]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def append_event_in_another_session() -> int:
    """Append and commit one event on a connection of its own; return that session's pid."""
    pids: list[int] = []

    def write() -> None:
        try:
            append_event()
            pids.append(backend_pid())
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(30)
    assert pids, "the writer thread failed"
    return pids[0]


def waiting_for_the_gate(session) -> bool:
    """Whether `session` waits for an advisory lock (its gate) that writers hold."""
    with other_database_session() as observer:
        return observer.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted)",
            (session.info.backend_pid,),
        ).fetchone()[0]


def test_a_commit_sends_no_notice_while_no_relay_sleeps():
    with other_database_session() as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        slot = wake_gate.take_slot(listener)
        wake_gate.limit_gate_wait(listener, 5)
        append_event()  # the relay is awake: no notice
        assert wake_gate.close_gate(listener, slot)
        sleeping_writer = append_event_in_another_session()
        received = list(listener.notifies(timeout=5, stop_after=1))

    # Notices arrive in commit order: one from the first commit would have come first.
    assert [(notify.channel, notify.pid) for notify in received] == [(NOTIFY_CHANNEL, sleeping_writer)]


@pytest.mark.parametrize("sleeping", [0, wake_gate.WAKE_SLOTS - 1])
def test_a_commit_notifies_when_the_relay_of_any_slot_sleeps(sleeping):
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(other_database_session()) for _ in range(wake_gate.WAKE_SLOTS)]
        slots = [wake_gate.take_slot(session) for session in sessions]
        assert slots == list(range(wake_gate.WAKE_SLOTS)), "a relay of another test still holds a slot"
        sleeper = sessions[sleeping]
        sleeper.execute(f"LISTEN {NOTIFY_CHANNEL}")
        wake_gate.limit_gate_wait(sleeper, 5)
        assert wake_gate.close_gate(sleeper, sleeping)

        append_event()
        received = list(sleeper.notifies(timeout=5, stop_after=1))

    assert [notify.channel for notify in received] == [NOTIFY_CHANNEL]


def test_a_relay_finds_no_slot_while_all_are_taken_and_the_first_freed_one_after():
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(other_database_session()) for _ in range(wake_gate.WAKE_SLOTS)]
        assert [wake_gate.take_slot(session) for session in sessions] == list(range(wake_gate.WAKE_SLOTS))
        with other_database_session() as latecomer:
            assert wake_gate.take_slot(latecomer) is None
            sessions[1].close()  # that relay stopped: its server session, and so its slot, ends soon after
            assert wait_until(lambda: wake_gate.take_slot(latecomer) == 1, what="the freed slot")


def test_closing_the_gate_waits_for_a_writer_between_its_insert_and_its_commit():
    closed: list[bool] = []
    with other_database_session() as relay:
        slot = wake_gate.take_slot(relay)
        wake_gate.limit_gate_wait(relay, 30)
        with transaction.atomic():
            event = append_event()
            assert OutboxEvent.objects.filter(pk=event.pk).exists()  # inserted, not committed
            closing = threading.Thread(target=lambda: closed.append(wake_gate.close_gate(relay, slot)))
            closing.start()
            # The writer took the gate shared at its insert and holds it to its commit.
            wait_until(lambda: waiting_for_the_gate(relay), what="the relay to wait for the writer")
            assert not closed
        closing.join(30)

        assert closed == [True]
        # The writer's event is committed by the time the gate closed: the relay's next claim sees it.
        seen = relay.execute("SELECT count(*) FROM outbox_outboxevent WHERE id = %s", (event.pk,)).fetchone()[0]
    assert seen == 1


def test_closing_the_gate_gives_up_after_its_wait_while_a_writer_holds_it():
    with other_database_session() as relay:
        slot = wake_gate.take_slot(relay)
        with transaction.atomic():
            event = append_event()
            assert OutboxEvent.objects.filter(pk=event.pk).exists()
            wake_gate.limit_gate_wait(relay, 0.05)
            assert wake_gate.close_gate(relay, slot) is False
        # The writer committed: nothing holds the gate any more.
        assert wake_gate.close_gate(relay, slot) is True
