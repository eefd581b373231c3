"""Waking the relay when events commit: LISTEN on the outbox's NOTIFY channel, behind a wake gate.

PostgreSQL delivers a NOTIFY only when the inserting transaction commits, which is exactly when
the events become claimable. Writers notify only while a relay has closed its gate
(`outbox.wake_gate`): the relay closes it once it has caught up and keeps it closed while
events trickle in, and opens it when its batches show commits coming faster than its cycle
(`relay.relay.Relay.work_once`). The
listener uses its own psycopg connection in autocommit mode: Django's connection opens
transactions, and notifications wait until a transaction ends. The gate's locks belong to that
connection's session, so losing it opens the gate.
"""

from __future__ import annotations

import logging

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

from outbox import wake_gate
from outbox.models import NOTIFY_CHANNEL
from outbox.worker import DatabaseUnavailable

logger = logging.getLogger(__name__)

# How long closing the gate may wait for writers between their insert and their commit. Past it
# the relay claims instead of sleeping, and tries again: a long writer transaction then costs a
# claim this often, and delays other writers' events by at most this much.
GATE_WAIT_SECONDS = 0.05


class ListenerUnavailable(DatabaseUnavailable):
    """The listening connection could not be opened or was lost."""


class CommitListener:
    """Waits for the outbox's insert notifications on a dedicated connection."""

    def __init__(self, *, channel: str = NOTIFY_CHANNEL, database: str = DEFAULT_DB_ALIAS) -> None:
        self._channel = channel
        self._database = database
        self._connection: psycopg.Connection | None = None
        self._slot: int | None = None
        self._gate_closed = False

    def connect(self) -> None:
        """Open the connection, LISTEN and take a wake slot; events committed before are found by a claim."""
        if self._connection is not None:
            return
        params = connections[self._database].get_connection_params()
        connection = None
        try:
            connection = psycopg.connect(
                dbname=params.get("dbname"),
                user=params.get("user"),
                password=params.get("password"),
                host=params.get("host"),
                port=params.get("port"),
                connect_timeout=5,
                autocommit=True,
            )
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            wake_gate.limit_gate_wait(connection, GATE_WAIT_SECONDS)
            self._slot = wake_gate.take_slot(connection)
        except psycopg.Error as exc:
            if connection is not None:
                connection.close()
            raise ListenerUnavailable(f"cannot LISTEN on {self._channel}: {type(exc).__name__}: {exc}") from exc
        self._connection = connection
        if self._slot is None:
            logger.warning(
                "relay.no_wake_slot slots=%d woken_on_commit=false: more relays run than wake slots; "
                "this one wakes on its poll or alongside the others",
                wake_gate.WAKE_SLOTS,
            )

    @property
    def gate_closed(self) -> bool:
        """This relay holds its gate closed: every commit notifies it."""
        return self._gate_closed

    def close_gate(self) -> bool:
        """Ask writers to notify from now on; False when in-flight writers kept it open too long.

        Events committed before this returns may have sent no notice: claim once more after it.
        """
        if self._gate_closed:
            return True
        self.connect()
        try:
            if self._slot is None:
                # A relay that owned one may have stopped since.
                self._slot = wake_gate.take_slot(self._connection)
                if self._slot is None:
                    return True  # no gate to close: the relays that own one are woken for every commit
                logger.info("relay.wake_slot_taken slot=%d woken_on_commit=true", self._slot)
            self._gate_closed = wake_gate.close_gate(self._connection, self._slot)
            return self._gate_closed
        except psycopg.Error as exc:
            self.close()
            raise ListenerUnavailable(f"cannot close the wake gate: {type(exc).__name__}: {exc}") from exc

    def open_gate(self) -> None:
        """Let writers commit without notifying again: the relay is busy with a backlog."""
        if not self._gate_closed:
            return
        self._gate_closed = False
        if self._connection is None or self._slot is None:
            return
        try:
            wake_gate.open_gate(self._connection, self._slot)
        except psycopg.Error:
            # The session, and with it the gate, is gone or going: closing makes sure. The next
            # connect() reports the outage if there is one.
            self.close()

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when events were committed meanwhile.

        Every notice already received is consumed with the first: one claim finds all their
        events, and a notice left behind would only wake the relay to an empty claim.
        """
        self.connect()
        try:
            notified = False
            for _ in self._connection.notifies(timeout=timeout, stop_after=1):
                notified = True
            if notified:
                for _ in self._connection.notifies(timeout=0):
                    pass
            return notified
        except psycopg.Error as exc:
            self.close()
            raise ListenerUnavailable(f"lost the LISTEN connection: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._slot = None
        self._gate_closed = False  # the gate's lock goes with the session
        if connection is not None and not connection.closed:
            connection.close()
