"""Django's PostgreSQL backend, writing outbox appends behind (see `outbox.write_behind`).

Use it as the database ENGINE, `outbox.backends.postgresql`; everything else is Django's own
backend. Without it the outbox works the same, with one more round trip per append.
"""

from __future__ import annotations

import os

from django.db.backends.postgresql import base
from django.db.backends.utils import debug_transaction

from outbox import write_behind


class DatabaseWrapper(base.DatabaseWrapper):
    """A PostgreSQL connection that sends queued outbox rows with its next statement or COMMIT."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        setattr(self, write_behind.QUEUE_ATTRIBUTE, [])
        # First in the list, so outermost: the rows go before the statement, as it is written.
        self.execute_wrappers.insert(0, write_behind.flush_before_statement)

    def _commit(self) -> None:
        if self.connection is None or not write_behind.queue_of(self):
            return super()._commit()
        with debug_transaction(self, "COMMIT"), self.wrap_database_errors:
            write_behind.flush(self, then_commit=True)

    def _rollback(self) -> None:
        write_behind.discard(self)
        return super()._rollback()

    def _savepoint_rollback(self, sid: str) -> None:
        write_behind.discard(self)
        return super()._savepoint_rollback(sid)

    def _close(self) -> None:
        # Closing a connection ends its transaction, rows and all.
        write_behind.discard(self)
        return super()._close()


# A forked child inherits its parent's connection pools, sessions and all, but not their threads.
# The sessions are the parent's: the child drops the pools (its first query opens a new one) and
# keeps the objects referenced, because closing or collecting one would end the parent's session.
_pools_of_the_parent: list = []


def _drop_pools_inherited_at_fork() -> None:
    _pools_of_the_parent.extend(base.DatabaseWrapper._connection_pools.values())
    base.DatabaseWrapper._connection_pools.clear()


os.register_at_fork(after_in_child=_drop_pools_inherited_at_fork)
