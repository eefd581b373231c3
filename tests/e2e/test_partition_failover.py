"""Two real consumer processes share 4 partitions; one is killed -9 and the other takes its share.

Who holds which partition is read from PostgreSQL's advisory locks (outbox.partition_leases): a
partition's lease is the lock (lease group's key, partition) held by that process's lease session.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from messaging import services
from messaging.models import Message, Notification
from messaging.topology import NOTIFICATIONS_CONSUMER
from outbox.models import InboxEntry, OutboxEvent
from outbox.partition_leases import lease_holders
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PARTITIONS = 4
CONSUMER_ENV = {"CONSUMER_PARTITIONS": str(PARTITIONS), "CONSUMER_REBALANCE_SECONDS": "0.2"}


def leases(topology) -> dict[int, set[int]]:
    """Database backend pid -> the partitions whose lease it holds."""
    return lease_holders(topology.queue_for(NOTIFICATIONS_CONSUMER).name, PARTITIONS)


def send(alice, bob, count: int, start: int) -> list[Message]:
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"m {start + i}") for i in range(count)]
    for message in messages[::2]:
        services.mark_message_read(message=message, reader=bob)
    return messages


def test_a_killed_consumers_partitions_move_to_the_other_and_nothing_is_lost_doubled_or_reordered(
    alice, bob, spawn_worker, settings, topology
):
    settings.CONSUMER_PARTITIONS = PARTITIONS
    spawn_worker("relay", env=CONSUMER_ENV)
    first = spawn_worker("consume_notifications", env=CONSUMER_ENV)
    # It takes the partitions one lock at a time: wait for the fourth.
    holders = wait_until(
        lambda: (h := leases(topology)) and list(h.values()) == [set(range(PARTITIONS))] and h,
        what="the first takes all",
    )
    (first_pid,) = holders
    second = spawn_worker("consume_notifications", env=CONSUMER_ENV)
    wait_until(
        lambda: sorted(len(p) for p in leases(topology).values()) == [2, 2],
        timeout=30,
        what="the partitions spread 2 and 2",
    )
    (second_pid,) = set(leases(topology)) - {first_pid}

    messages = send(alice, bob, 30, 0)
    wait_until(lambda: InboxEntry.objects.count() >= 10, timeout=30, what="consumption under way")
    first.kill()
    first.wait(timeout=10)
    messages += send(alice, bob, 30, 30)

    wait_until(
        lambda: leases(topology) == {second_pid: set(range(PARTITIONS))},
        timeout=15,
        what="the survivor takes every partition",
    )
    # The consumer appends notification events of its own: only the message events reach it.
    events = OutboxEvent.objects.filter(event_type__startswith="message.").count()
    assert events == len(messages) + len(messages) // 2
    wait_until(lambda: InboxEntry.objects.count() == events, timeout=60, what=f"all {events} events applied")
    assert second.poll() is None
    assert Notification.objects.count() == len(messages)
    assert set(Notification.objects.values_list("message_id", flat=True)) == {m.pk for m in messages}
    read = {m.pk for m in messages[0:30:2]} | {m.pk for m in messages[30:60:2]}
    assert set(Notification.objects.filter(is_read=True).values_list("message_id", flat=True)) == read
    per_message: dict[str, list[int]] = defaultdict(list)
    for subject, sequence in InboxEntry.objects.order_by("id").values_list("subject", "sequence"):
        per_message[subject].append(sequence)
    assert len(per_message) == len(messages)
    assert all(sequences == sorted(sequences) for sequences in per_message.values())
