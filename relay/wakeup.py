"""Waking the relay when events commit: LISTEN on the outbox's NOTIFY channel.

PostgreSQL delivers a NOTIFY only when the inserting transaction commits, which is exactly when
the events become claimable. The listener uses its own psycopg connection in autocommit mode:
Django's connection opens transactions, and notifications wait until a transaction ends.
"""

from __future__ import annotations

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

from outbox.models import NOTIFY_CHANNEL


class ListenerUnavailable(Exception):
    """The listening connection could not be opened or was lost."""


class CommitListener:
    """Waits for the outbox's insert notifications on a dedicated connection."""

    def __init__(self, *, channel: str = NOTIFY_CHANNEL, database: str = DEFAULT_DB_ALIAS) -> None:
        self._channel = channel
        self._database = database
        self._connection: psycopg.Connection | None = None

    def connect(self) -> None:
        """Open the connection and LISTEN; events committed before this are found by a claim."""
        if self._connection is not None:
            return
        params = connections[self._database].get_connection_params()
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
        except psycopg.Error as exc:
            raise ListenerUnavailable(f"cannot LISTEN on {self._channel}: {type(exc).__name__}: {exc}") from exc
        self._connection = connection

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when events were committed meanwhile."""
        self.connect()
        try:
            notified = False
            for _ in self._connection.notifies(timeout=timeout, stop_after=1):
                notified = True
            return notified
        except psycopg.Error as exc:
            self.close()
            raise ListenerUnavailable(f"lost the LISTEN connection: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.close()
