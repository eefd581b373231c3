"""Which consumer process consumes which partition queue: leases on PostgreSQL advisory locks.

Every process holds a shared "member" advisory lock, so the live processes can be counted from
`pg_locks`; each takes its fair share of the partitions by try-locking one exclusive advisory lock
per partition, and consumes only the partitions whose lock it holds. A process that dies ends its
database session, its locks vanish with it, and the others take its partitions at their next
rebalance. The locks live on a dedicated autocommit connection, never the one that runs the
consumer's transactions, so a rollback there cannot drop a lease. The locks are keyed by a lease
group, the consumer's queue name: consumers of another broker namespace on the same database (a
chaos run or a benchmark beside a deployment) neither count as members nor hold these partitions.

Releasing a partition calls `on_release` (the caller closes that partition's channel, so its
unacknowledged deliveries go back to the queue) and only then unlocks: another process cannot start
on the partition while this one may still be handling a delivery of it. When the lease connection
itself fails, the locks are gone already, so every partition is dropped at once.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Callable

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)

# The second advisory key of the member lock; partitions use 0..N-1.
MEMBER_KEY = -1

_MEMBERS_SQL = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = %s::oid AND objid = %s::oid AND objsubid = 2 AND granted
ORDER BY pid
"""


def lease_namespace(group: str) -> int:
    """The first advisory key of lease group `group`: a stable 31-bit number from its name."""
    return zlib.crc32(group.encode()) & 0x7FFFFFFF


_HOLDERS_SQL = """
SELECT pid, objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = %s::oid AND objid::bigint < %s AND objsubid = 2 AND granted
"""


def lease_holders(group: str, partitions: int, using: str = DEFAULT_DB_ALIAS) -> dict[int, set[int]]:
    """Who holds lease group `group`'s partitions now: lease session pid -> its partitions."""
    held: dict[int, set[int]] = {}
    with connections[using].cursor() as cursor:
        cursor.execute(_HOLDERS_SQL, [lease_namespace(group), partitions])
        for pid, partition in cursor.fetchall():
            held.setdefault(pid, set()).add(partition)
    return held


def fair_share(partitions: int, members: list[int], pid: int) -> int:
    """How many of `partitions` the member `pid` takes among `members` (backend pids).

    Every member gets `partitions // len(members)`; the lowest-ranked pids take one more each
    until the remainder is used, so the shares add up to exactly `partitions`.
    """
    if pid not in members:
        return 0
    base, extra = divmod(partitions, len(members))
    return base + (1 if members.index(pid) < extra else 0)


def lease_connection(using: str = DEFAULT_DB_ALIAS) -> psycopg.Connection:
    """A new autocommit connection to the database of `using`, dedicated to the leases."""
    params = connections[using].get_connection_params()
    params.pop("cursor_factory", None)
    params.setdefault("connect_timeout", 5)
    return psycopg.connect(**params, autocommit=True)


class PartitionLeases:
    """This process's leases on partitions 0..`partitions`-1 of lease group `group` (a consumer's queue)."""

    def __init__(
        self,
        group: str,
        partitions: int,
        *,
        on_acquire: Callable[[int], None],
        on_release: Callable[[int], None],
        connect: Callable[[], psycopg.Connection] = lease_connection,
    ) -> None:
        self.namespace = lease_namespace(group)
        self.partitions = partitions
        self.held: set[int] = set()
        self._on_acquire = on_acquire
        self._on_release = on_release
        self._connect = connect
        self._connection: psycopg.Connection | None = None

    def rebalance(self) -> set[int]:
        """Join if needed, then release partitions past this process's share or take free ones.

        Returns the partitions held afterwards. A database failure drops every partition (its
        channel first) and is logged; the next call reconnects.
        """
        try:
            connection = self._join()
            members = [row[0] for row in connection.execute(_MEMBERS_SQL, (self.namespace, MEMBER_KEY))]
            share = fair_share(self.partitions, members, connection.info.backend_pid)
            for partition in sorted(self.held, reverse=True)[: max(0, len(self.held) - share)]:
                self._release(connection, partition)
            for partition in range(self.partitions):
                if len(self.held) >= share:
                    break
                if partition not in self.held and self._try_lock(connection, partition):
                    self.held.add(partition)
                    self._on_acquire(partition)
        except psycopg.Error as exc:
            self._lost(exc)
        return set(self.held)

    def close(self) -> None:
        """Release every partition (channel first, then lock) and leave."""
        if self._connection is None:
            return
        try:
            for partition in sorted(self.held):
                self._release(self._connection, partition)
            self._connection.close()
        except psycopg.Error as exc:
            self._lost(exc)
        self._connection = None

    def _join(self) -> psycopg.Connection:
        if self._connection is None or self._connection.closed:
            connection = self._connect()
            connection.execute("SELECT pg_advisory_lock_shared(%s, %s)", (self.namespace, MEMBER_KEY))
            self._connection = connection
        return self._connection

    def _try_lock(self, connection: psycopg.Connection, partition: int) -> bool:
        row = connection.execute("SELECT pg_try_advisory_lock(%s, %s)", (self.namespace, partition)).fetchone()
        return bool(row and row[0])

    def _release(self, connection: psycopg.Connection, partition: int) -> None:
        self._on_release(partition)
        self.held.discard(partition)
        connection.execute("SELECT pg_advisory_unlock(%s, %s)", (self.namespace, partition))

    def _lost(self, exc: psycopg.Error) -> None:
        logger.warning(
            "partition leases lost",
            extra={"event": "partition_leases_lost", "error": type(exc).__name__, "partitions": sorted(self.held)},
        )
        for partition in sorted(self.held):
            self._on_release(partition)
        self.held.clear()
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None
