"""Appends written behind (`emit_many(..., returning=False)` on outbox.backends.postgresql).

Their rows travel with the transaction's next statement or its COMMIT; what must hold is what
holds for an append written at once: they commit with the transaction or not at all, the
transaction reads them, and a savepoint rolled back takes its own appends and no others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import select
import tempfile
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, OperationalError, ProgrammingError, connection, connections, transaction

import outbox
from messaging.events import MESSAGE_CREATED, MESSAGE_READ
from messaging.models import Message
from outbox import write_behind
from outbox.errors import InvalidEvent
from outbox.models import NOTIFY_CHANNEL, OutboxEvent
from outbox.services import EventDraft
from tests.helpers import other_database_session, sleeping_relay_session
from tests.scraping import value


def draft(aggregate_id=None) -> EventDraft:
    aggregate_id = aggregate_id or uuid.uuid4()
    payload = {"message_id": str(aggregate_id), "receiver_id": 7, "read_at": "2026-01-01T00:00:00Z"}
    return EventDraft(aggregate_type="message", aggregate_id=aggregate_id, event_type=MESSAGE_READ, payload=payload)


def append_behind(*drafts: EventDraft) -> None:
    assert outbox.emit_many(drafts, returning=False) is None


def last_query_of(backend_pid: int) -> str:
    """The server's own record of a session's last query, read from another session."""
    with other_database_session() as observer:
        return observer.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [backend_pid]).fetchone()[0]


def stored_aggregates() -> set[str]:
    return set(OutboxEvent.objects.values_list("aggregate_id", flat=True))


def test_the_project_database_writes_appends_behind():
    assert settings.DATABASES["default"]["ENGINE"] == "outbox.backends.postgresql"
    assert write_behind.queue_of(connection) == []


@contextlib.contextmanager
def protocol_trace() -> Iterator[list[str]]:
    """libpq's trace of what this test's connection sends (F) and receives (B), one line a message."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    lines: list[str] = []
    with tempfile.TemporaryFile() as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield lines
        finally:
            pgconn.untrace()
            trace.seek(0)
            lines += trace.read().decode().splitlines()


def sent_before_the_first_reply(lines: list[str]) -> list[tuple[str, str]]:
    """(message, its fields) the client sent before it read a reply: what went in one round trip."""
    sent = []
    for line in lines:
        direction, _length, message, *fields = line.split("\t")
        if direction == "B":
            break
        sent.append((message, "".join(fields).strip()))
    return sent


def statements_parsed(sent: list[tuple[str, str]]) -> list[str]:
    """The SQL of each Parse message, cut after its first two words: `"name" "SQL…`."""
    return [" ".join(fields.split(" ")[:2]) for message, fields in sent if message == "Parse"]


@pytest.mark.django_db(transaction=True)
def test_appends_written_behind_go_with_the_commit_in_one_round_trip():
    first, second = draft(), draft()

    with protocol_trace() as lines, transaction.atomic():
        append_behind(first, second)
        assert len(write_behind.queue_of(connection)) == 2  # nothing sent yet

    sent = sent_before_the_first_reply(lines)
    # BEGIN (no statement had opened the transaction), the INSERT of both rows, the COMMIT and
    # the sync point: all sent before the first reply was read.
    assert statements_parsed(sent) == ['"" "BEGIN"', '"" "INSERT', '"" "COMMIT"']
    assert sent[-1] == ("Sync", "")
    assert write_behind.queue_of(connection) == []
    assert stored_aggregates() == {str(first.aggregate_id), str(second.aggregate_id)}


@pytest.mark.django_db(transaction=True)
def test_a_message_written_behind_wakes_the_relay_on_commit(alice, bob):
    with sleeping_relay_session() as listener:
        Message.objects.create(sender=alice, receiver=bob, content="hello")
        received = list(listener.notifies(timeout=5, stop_after=1))

    assert [notify.channel for notify in received] == [NOTIFY_CHANNEL]
    assert OutboxEvent.objects.filter(event_type="message.created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_events_written_behind_keep_their_order_of_append():
    drafts = [draft() for _ in range(5)]

    with transaction.atomic():
        for each in drafts:
            append_behind(each)

    stored = list(OutboxEvent.objects.order_by("id").values_list("aggregate_id", flat=True))
    assert stored == [str(each.aggregate_id) for each in drafts]


@pytest.mark.django_db(transaction=True)
def test_a_transaction_reads_its_own_appends_written_behind():
    appended = draft()

    with transaction.atomic():
        append_behind(appended)
        seen = OutboxEvent.objects.filter(aggregate_id=str(appended.aggregate_id)).count()
        assert write_behind.queue_of(connection) == []  # sent before the SELECT

    assert seen == 1
    assert OutboxEvent.objects.filter(aggregate_id=str(appended.aggregate_id)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_appends_sent_before_the_transactions_first_statement_roll_back_with_it():
    # Nothing has opened the transaction on the server yet when the rows go: they must open it,
    # not commit on their own.
    appended = draft()

    with pytest.raises(RuntimeError), transaction.atomic():
        append_behind(appended)
        assert OutboxEvent.objects.filter(aggregate_id=str(appended.aggregate_id)).count() == 1
        raise RuntimeError("the change failed")

    assert stored_aggregates() == set()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_drops_its_appends_and_the_next_one_does_not_send_them():
    dropped, kept = draft(), draft()

    with pytest.raises(RuntimeError), transaction.atomic():
        append_behind(dropped)
        raise RuntimeError("the change failed")
    with transaction.atomic():
        append_behind(kept)

    assert stored_aggregates() == {str(kept.aggregate_id)}


@pytest.mark.django_db(transaction=True)
def test_a_savepoint_rolled_back_drops_its_own_appends_only():
    outer, inner, after = draft(), draft(), draft()

    with transaction.atomic():
        append_behind(outer)
        with pytest.raises(RuntimeError), transaction.atomic():
            append_behind(inner)
            raise RuntimeError("the inner change failed")
        append_behind(after)

    assert stored_aggregates() == {str(outer.aggregate_id), str(after.aggregate_id)}


@pytest.mark.django_db(transaction=True)
def test_a_database_error_caught_in_a_savepoint_does_not_lose_the_outer_appends():
    outer = draft()

    with transaction.atomic():
        append_behind(outer)
        # Its SAVEPOINT is a statement: the outer row goes before it, outside the savepoint.
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {OutboxEvent._meta.db_table} (id) VALUES (NULL)")

    assert stored_aggregates() == {str(outer.aggregate_id)}


@contextlib.contextmanager
def trigger_refusing_events(reason: str, *, at_commit: bool):
    """A trigger that refuses every event row, at its insert or at COMMIT: what only the database can refuse."""
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_event() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{reason}' USING ERRCODE = 'check_violation'; END $$"
        )
        kind, timing = (
            ("CONSTRAINT TRIGGER", f"AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED")
            if at_commit
            else ("TRIGGER", f"BEFORE INSERT ON {table}")
        )
        cursor.execute(f"CREATE {kind} test_refuse_event {timing} FOR EACH ROW EXECUTE FUNCTION test_refuse_event()")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER test_refuse_event ON {table}")
            cursor.execute("DROP FUNCTION test_refuse_event()")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("at_commit", [False, True], ids=["at_its_insert", "at_the_commit_itself"])
def test_an_append_the_database_refuses_fails_the_commit_and_nothing_commits(at_commit, alice, bob):
    counted = value("outbox_events_appended_total", event_type=MESSAGE_CREATED)
    # The rows go in the COMMIT's query: the INSERT fails there, or the COMMIT does.
    with trigger_refusing_events("refused", at_commit=at_commit), pytest.raises(IntegrityError, match="refused"):
        Message.objects.create(sender=alice, receiver=bob, content="hello")

    assert value("outbox_events_appended_total", event_type=MESSAGE_CREATED) == counted
    assert not Message.objects.exists()
    assert OutboxEvent.objects.count() == 0
    assert write_behind.queue_of(connection) == []
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@pytest.mark.django_db
def test_an_aggregate_id_too_long_to_store_is_refused_when_appended():
    with pytest.raises(InvalidEvent, match="aggregate_id must be 1 to 100 characters"):
        append_behind(draft(aggregate_id="x" * 101))

    assert write_behind.queue_of(connection) == []


@pytest.mark.django_db(transaction=True)
def test_on_another_postgresql_engine_an_append_returning_nothing_is_written_at_once(monkeypatch):
    appended = draft()
    # Django's own backend has no queue.
    monkeypatch.setattr(connection, write_behind.QUEUE_ATTRIBUTE, None)

    with transaction.atomic():
        append_behind(appended)
        last_query = last_query_of(connection.connection.info.backend_pid)

    assert last_query.startswith(f"INSERT INTO {OutboxEvent._meta.db_table}")
    assert not last_query.endswith("COMMIT")
    assert stored_aggregates() == {str(appended.aggregate_id)}


@pytest.mark.django_db(transaction=True)
def test_rows_are_written_in_the_connections_current_encoding():
    # The literals are made by a Transformer kept per connection; one kept past a change of
    # client encoding would send UTF-8 bytes to a server reading LATIN1, storing mojibake.
    headers = {"note": "café crème"}
    first, second = (dataclasses.replace(draft(), headers=headers) for _ in range(2))
    with transaction.atomic():
        append_behind(first)
    with connection.cursor() as cursor:
        cursor.execute("SET client_encoding TO 'LATIN1'")
    try:
        with transaction.atomic():
            append_behind(second)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET client_encoding TO 'UTF8'")

    stored = dict(OutboxEvent.objects.values_list("aggregate_id", "headers"))
    assert stored == {str(first.aggregate_id): headers, str(second.aggregate_id): headers}


def prepared_inserts_of_this_session() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO outbox%%'")
        return [row[0] for row in cursor.fetchall()]


def new_session() -> None:
    """Leave this thread's session for a new one: closed, a pooled connection comes back the same."""
    connection.close()
    connection.close_pool()


@pytest.fixture
def pooled_connection():
    """This test's connections from psycopg's pool, as gunicorn's workers take them (DATABASE_POOL_MAX_SIZE)."""
    config = connection.settings_dict  # the one dict every thread's connection reads
    saved = config["CONN_MAX_AGE"], config["OPTIONS"].get("pool")
    new_session()
    config["CONN_MAX_AGE"] = 0
    config["OPTIONS"]["pool"] = {"min_size": 1, "max_size": 4, "timeout": 5}
    yield
    new_session()
    config["CONN_MAX_AGE"] = saved[0]
    if saved[1] is None:
        del config["OPTIONS"]["pool"]
    else:
        config["OPTIONS"]["pool"] = saved[1]


def only_one_pooled_session() -> None:
    """A new pool whose one session is up before anything asks: a request that waited would grow it."""
    new_session()
    connection.pool.open()
    connection.pool.wait(timeout=10)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_single_append_goes_through_a_statement_prepared_once_per_connection():
    new_session()  # a session of its own, with nothing prepared yet
    with protocol_trace() as first_commit, transaction.atomic():
        append_behind(draft())
    with protocol_trace() as second_commit, transaction.atomic():
        append_behind(draft())

    begin, insert, commit = statements_parsed(sent_before_the_first_reply(first_commit))
    assert (begin, commit) == ('"" "BEGIN"', '"" "COMMIT"')
    assert insert.startswith('"outbox_append_')
    assert insert.endswith('" "INSERT')
    # The second commit binds the prepared statement: only BEGIN and COMMIT are parsed.
    sent = sent_before_the_first_reply(second_commit)
    assert statements_parsed(sent) == ['"" "BEGIN"', '"" "COMMIT"']
    assert len(prepared_inserts_of_this_session()) == 1
    assert OutboxEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_may_not_prepare_plans_each_append_and_keeps_nothing():
    # Django's default (prepare_threshold None), and DATABASE_PREPARED_STATEMENTS=false: what
    # a pooler that does not carry prepared statements between server connections needs.
    new_session()
    connection.ensure_connection()
    connection.connection.prepare_threshold = None
    commits = []
    for _ in range(2):
        with protocol_trace() as lines, transaction.atomic():
            append_behind(draft())
        commits.append(statements_parsed(sent_before_the_first_reply(lines)))

    assert commits == [['"" "BEGIN"', '"" "INSERT', '"" "COMMIT"']] * 2
    assert prepared_inserts_of_this_session() == []
    assert OutboxEvent.objects.count() == 2
    new_session()  # not back to the pool with its threshold changed


@pytest.mark.django_db(transaction=True)
def test_a_pooled_session_taken_by_another_thread_binds_the_statement_it_prepared(pooled_connection):
    only_one_pooled_session()
    with transaction.atomic():
        append_behind(draft())
    first_pid = backend_pid()
    connection.close()  # back to the pool, its only idle session
    taken = {}

    def commit_in_another_thread() -> None:
        try:
            with protocol_trace() as lines, transaction.atomic():
                append_behind(draft())
            taken["pid"] = backend_pid()
            taken["parsed"] = statements_parsed(sent_before_the_first_reply(lines))
            taken["prepared"] = len(prepared_inserts_of_this_session())
        finally:
            connections.close_all()

    thread = threading.Thread(target=commit_in_another_thread)
    thread.start()
    thread.join(timeout=30)

    assert taken["pid"] == first_pid
    assert taken["parsed"] == ['"" "BEGIN"', '"" "COMMIT"']
    assert taken["prepared"] == 1
    assert OutboxEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("statement", ["DISCARD ALL", "DEALLOCATE ALL", "  deallocate all"])
def test_prepared_statements_dropped_through_django_are_prepared_again_at_the_next_commit(statement, alice, bob):
    Message.objects.create(sender=alice, receiver=bob, content="first")
    with connection.cursor() as cursor:
        cursor.execute(statement)
    assert prepared_inserts_of_this_session() == []

    Message.objects.create(sender=alice, receiver=bob, content="second")

    assert len(prepared_inserts_of_this_session()) == 1
    assert OutboxEvent.objects.count() == Message.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_dropped_past_django_fails_one_commit_and_the_next_prepares_again(alice, bob):
    Message.objects.create(sender=alice, receiver=bob, content="first")
    connection.connection.execute("DEALLOCATE ALL")  # the raw psycopg connection: no wrapper sees it

    with pytest.raises(ProgrammingError, match="does not exist"):
        Message.objects.create(sender=alice, receiver=bob, content="lost with its commit")
    Message.objects.create(sender=alice, receiver=bob, content="third")

    contents = set(Message.objects.values_list("content", flat=True))
    assert contents == {"first", "third"}
    assert OutboxEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_ctrl_c_while_the_commit_is_on_the_wire_takes_effect_once_it_has_committed(monkeypatch, alice, bob):
    wait = write_behind._wait
    interrupts = []

    def interrupted_once(pgconn, event):
        if event == select.POLLIN and not interrupts:
            interrupts.append(event)
            raise KeyboardInterrupt
        wait(pgconn, event)

    monkeypatch.setattr(write_behind, "_wait", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        Message.objects.create(sender=alice, receiver=bob, content="interrupted")

    assert interrupts
    assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert Message.objects.count() == OutboxEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_before_the_commit_fails_it_and_nothing_commits(alice, bob):
    with pytest.raises(OperationalError), transaction.atomic():
        Message.objects.create(sender=alice, receiver=bob, content="lost")
        with other_database_session() as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])

    assert Message.objects.count() == OutboxEvent.objects.count() == 0
    Message.objects.create(sender=alice, receiver=bob, content="after")  # on a new connection
    assert Message.objects.count() == OutboxEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_many_rows_go_as_several_inserts_in_the_commits_round_trip(monkeypatch):
    monkeypatch.setattr(write_behind, "ROWS_PER_STATEMENT", 2)
    drafts = [draft() for _ in range(5)]

    with protocol_trace() as lines, transaction.atomic():
        append_behind(*drafts)

    sent = sent_before_the_first_reply(lines)
    assert statements_parsed(sent) == ['"" "BEGIN"'] + ['"" "INSERT'] * 3 + ['"" "COMMIT"']
    stored = list(OutboxEvent.objects.order_by("id").values_list("aggregate_id", flat=True))
    assert stored == [str(each.aggregate_id) for each in drafts]


@pytest.mark.django_db(transaction=True)
def test_more_rows_than_one_statement_can_bind_commit_all():
    # 8 parameters a row: 8,200 rows are more than the protocol's 65,535 parameters a statement.
    drafts = [draft() for _ in range(8200)]

    with transaction.atomic():
        append_behind(*drafts)

    assert OutboxEvent.objects.count() == 8200


def _append_in_a_forked_child(child_pid) -> None:
    with transaction.atomic():
        append_behind(draft())
    child_pid.value = backend_pid()
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_opens_sessions_of_its_own_and_leaves_the_parents_pooled_ones_alone(pooled_connection):
    only_one_pooled_session()
    with transaction.atomic():
        append_behind(draft())
    parent_pid = backend_pid()
    connection.close()  # back to this process's pool, which the child inherits
    context = multiprocessing.get_context("fork")
    child_pid = context.Value("i", 0)

    child = context.Process(target=_append_in_a_forked_child, args=(child_pid,))
    child.start()
    child.join(timeout=60)

    assert child.exitcode == 0
    assert child_pid.value not in (0, parent_pid)
    with transaction.atomic():
        append_behind(draft())
    assert backend_pid() == parent_pid
    assert OutboxEvent.objects.count() == 3
