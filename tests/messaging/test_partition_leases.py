"""Partition leases on real PostgreSQL advisory locks: take all, spread, hand over, lose the database."""

import uuid

import pytest

from outbox.partition_leases import PartitionLeases, fair_share, lease_connection, lease_holders
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Member:
    """One would-be consumer process: its leases and the channel calls they made, in order."""

    def __init__(self, consumer: str, partitions: int) -> None:
        self.calls: list[tuple[str, int]] = []
        self.leases = PartitionLeases(
            consumer,
            partitions,
            on_acquire=lambda p: self.calls.append(("open", p)),
            on_release=self.released,
        )
        self.lock_held_at_release: list[bool] = []

    def released(self, partition: int) -> None:
        self.calls.append(("close", partition))
        with lease_connection() as observer:
            row = observer.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid"
                " AND objid = %s::oid AND objsubid = 2 AND granted",
                (self.leases.namespace, partition),
            ).fetchone()
        self.lock_held_at_release.append(row[0] == 1)


def settle(*members: Member, rounds: int = 4) -> None:
    for _ in range(rounds):
        for member in members:
            member.leases.rebalance()


@pytest.fixture
def consumer():
    return f"test-{uuid.uuid4().hex}"


def test_fair_shares_add_up_and_favour_the_lowest_pids():
    assert [fair_share(4, [10, 20, 30], pid) for pid in (10, 20, 30)] == [2, 1, 1]
    assert [fair_share(4, [10, 20], pid) for pid in (10, 20)] == [2, 2]
    assert fair_share(4, [10], 99) == 0


def test_one_process_takes_every_partition(consumer):
    member = Member(consumer, 4)
    try:
        assert member.leases.rebalance() == {0, 1, 2, 3}
        assert member.calls == [("open", p) for p in range(4)]
    finally:
        member.leases.close()


def test_partitions_spread_across_processes_without_overlap(consumer):
    members = [Member(consumer, 5) for _ in range(3)]
    try:
        settle(*members)
        held = [m.leases.held for m in members]
        assert sorted(len(h) for h in held) == [1, 2, 2]
        assert set().union(*held) == set(range(5))
        assert sum(len(h) for h in held) == 5
    finally:
        for m in members:
            m.leases.close()


def test_processes_of_another_lease_group_neither_count_nor_take_this_groups_partitions(consumer):
    # Another broker namespace's consumer on the same database (a chaos run beside a deployment).
    ours, theirs = Member(consumer, 4), Member(f"{consumer}-other", 4)
    try:
        settle(ours, theirs)
        assert ours.leases.held == theirs.leases.held == {0, 1, 2, 3}
        assert lease_holders(consumer, 4) == {ours.leases._connection.info.backend_pid: {0, 1, 2, 3}}
    finally:
        ours.leases.close()
        theirs.leases.close()


def test_a_partition_is_released_channel_first_then_lock(consumer):
    first, second = Member(consumer, 4), Member(consumer, 4)
    try:
        first.leases.rebalance()
        settle(second, first, second)
        assert len(first.leases.held) == len(second.leases.held) == 2
        assert first.lock_held_at_release
        assert all(first.lock_held_at_release)
    finally:
        first.leases.close()
        second.leases.close()


def test_a_departed_process_partitions_move_to_the_others(consumer):
    first, second = Member(consumer, 4), Member(consumer, 4)
    try:
        settle(first, second)
        assert len(second.leases.held) == 2
        first.leases.close()
        # The departed backend leaves pg_locks once the server has seen the connection end.
        wait_until(lambda: second.leases.rebalance() == {0, 1, 2, 3}, timeout=5, what="hand-over")
    finally:
        second.leases.close()


def test_a_terminated_lease_session_drops_every_channel_then_rejoins(consumer):
    member = Member(consumer, 3)
    try:
        member.leases.rebalance()
        pid = member.leases._connection.info.backend_pid
        with lease_connection() as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        member.calls.clear()
        assert member.leases.rebalance() == set()
        assert sorted(member.calls) == [("close", 0), ("close", 1), ("close", 2)]
        assert member.leases.rebalance() == {0, 1, 2}
    finally:
        member.leases.close()
