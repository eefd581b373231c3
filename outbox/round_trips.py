"""Statements sent together: one round trip to the server for several of them.

On this kind of machine a round trip to PostgreSQL, not the statement, is most of what a small
statement costs a relay or a consumer at a low rate, and each one they save comes off the
end-to-end latency.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import DEFAULT_DB_ALIAS, connections


@contextlib.contextmanager
def one_round_trip(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Statements run through Django's cursors in here are sent together at the exit, with the
    transaction's BEGIN when they are its first; their results are read after the block.

    libpq's pipeline mode. Its exit ends with a flush request, after which PostgreSQL leaves
    `idle_in_transaction_session_timeout` unarmed until the next statement: what must arm that
    timer does not end in here.
    """
    db = connections[using]
    db.ensure_connection()
    with db.wrap_database_errors, db.connection.pipeline():
        yield
