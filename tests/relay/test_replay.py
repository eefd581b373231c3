"""outbox_replay against the real PostgreSQL and RabbitMQ: what goes out, where, and how it stops."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from kombu import Exchange, Queue

from messaging.consumers import NotificationsConsumer
from messaging.models import Message, Notification
from outbox.broker import Topology, load_topology
from outbox.envelope import AGGREGATE_ID_HEADER
from outbox.models import InboxEntry, OutboxEvent
from relay.amqp_publisher import ConfirmingPublisher
from relay.replay import ReplaySelection, ReplayStopped, plan_replay, replay_events
from tests.helpers import get_messages, queue_depth, relay_pending_events, run_in_thread, wait_until
from tooling.faults.tcp_proxy import TcpProxy


def send(sender, receiver, count: int) -> list[Message]:
    return [Message.objects.create(sender=sender, receiver=receiver, content=f"message {i}") for i in range(count)]


def take_and_ack(channel, queue, count: int) -> list:
    deliveries = get_messages(channel, queue, expected=count)
    for delivery in deliveries:
        delivery.ack()
    return deliveries


@pytest.fixture
def other_team_queue(topology, broker_channel):
    """Another team's queue bound to our events exchange for every message event."""
    queue = Queue(f"{topology.events.name}.other-team", exchange=topology.events, routing_key="message.#")
    queue(broker_channel).declare()
    yield queue
    queue(broker_channel).delete()


@pytest.mark.django_db
def test_replay_to_the_exchange_sends_each_event_byte_for_byte_as_the_relay_did(alice, bob, topology, broker_channel):
    messages = send(alice, bob, 3)
    messages[0].is_read = True
    messages[0].save()
    queue = topology.queue_for("notifications")
    relay_pending_events()
    original = take_and_ack(broker_channel, queue, 4)

    call_command("outbox_replay")

    replayed = take_and_ack(broker_channel, queue, 4)
    assert [d.body for d in replayed] == [d.body for d in original]
    assert [d.properties for d in replayed] == [d.properties for d in original]
    assert [d.headers for d in replayed] == [d.headers for d in original]
    assert [d.delivery_info["routing_key"] for d in replayed] == ["message.created"] * 3 + ["message.read"]


@pytest.mark.django_db
def test_replay_filters_by_type_aggregate_and_time_and_prints_the_plan(alice, bob, topology, broker_channel, capsys):
    first, second = send(alice, bob, 2)
    for message in (first, second):
        message.is_read = True
        message.save()
    relay_pending_events()
    take_and_ack(broker_channel, topology.queue_for("notifications"), 4)
    now = timezone.now()

    call_command("outbox_replay", "--type", "message.read", "--aggregate-id", str(second.pk), "--dry-run")
    dry = capsys.readouterr().out
    call_command("outbox_replay", "--until", (now - timedelta(hours=1)).isoformat(), "--dry-run")
    none_before = capsys.readouterr().out
    call_command("outbox_replay", "--aggregate-type", "message", "--type", "message.created", "--since", "2020-01-01")
    created = capsys.readouterr().out

    assert "1 published events to replay (message.read: 1)" in dry
    assert "every consumer of every team" in dry
    assert "dry run: nothing sent" in dry
    assert "0 published events to replay (none)" in none_before
    assert "2 published events to replay (message.created: 2)" in created
    assert "replayed 2 events" in created
    deliveries = take_and_ack(broker_channel, topology.queue_for("notifications"), 2)
    assert [d.properties["type"] for d in deliveries] == ["message.created"] * 2
    assert queue_depth(broker_channel, topology.queue_for("notifications")) == 0


@pytest.mark.django_db
def test_replay_leaves_pending_events_to_the_relay(alice, bob, topology, broker_channel):
    send(alice, bob, 1)

    plan = plan_replay(ReplaySelection())

    assert plan.total == 0
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_replay_to_one_consumer_reaches_its_queue_only(alice, bob, topology, broker_channel, other_team_queue, capsys):
    send(alice, bob, 2)
    relay_pending_events()
    take_and_ack(broker_channel, topology.queue_for("notifications"), 2)
    take_and_ack(broker_channel, other_team_queue, 2)

    call_command("outbox_replay", "--consumer", "notifications")

    assert f"consumer 'notifications' only: straight to its queue '{topology.queue_for('notifications').name}'" in (
        capsys.readouterr().out
    )
    assert len(take_and_ack(broker_channel, topology.queue_for("notifications"), 2)) == 2
    assert queue_depth(broker_channel, other_team_queue) == 0

    call_command("outbox_replay")

    assert len(take_and_ack(broker_channel, other_team_queue, 2)) == 2


@pytest.mark.django_db
def test_an_empty_id_selection_selects_nothing_not_everything(alice, bob, topology):
    send(alice, bob, 2)
    relay_pending_events()

    assert plan_replay(ReplaySelection(ids=())).total == 0
    assert plan_replay(ReplaySelection()).total == 2


@pytest.mark.django_db
def test_a_consumer_replay_skips_types_its_queue_is_not_bound_for(alice, bob, topology):
    message = send(alice, bob, 1)[0]
    message.is_read = True
    message.save()
    relay_pending_events()
    reads_only = Topology(
        events=topology.events,
        queues={"reads": Queue("reads", exchange=topology.events, routing_key="*.read")},
    )

    plan = plan_replay(ReplaySelection(), consumer="reads", topology=reads_only)

    assert plan.counts == {"message.read": 1}
    assert plan.not_routed == {"message.created": 1}
    assert plan.last_id == OutboxEvent.objects.get(event_type="message.read").id


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--since", "yesterday"], "is not an ISO 8601 date or time"),
        (["--since", "2026-11-24T10:00Z", "--until", "2026-11-24T09:00Z"], "must be before until"),
        (["--since", "2026-11-24", "--until", "2026-11-24"], "must be before until"),
        (["--type", "message.craeted"], "unknown event type message.craeted; known types: "),
        (
            ["--consumer", "billing"],
            "the topology has no consumer 'billing'; its consumers: notification-events, notifications",
        ),
        (["--forget-inbox"], "forgetting inbox entries needs a consumer"),
        (["--batch-size", "0"], "'0' is not a batch size: a whole number from 1 to 100,000"),
        (["--batch-size", "99999999999999999999"], "is not a batch size"),
        (["--since", "2026-11-24T25:00"], "is not an ISO 8601 date or time"),
    ],
)
@pytest.mark.django_db
def test_bad_replay_arguments_are_refused_with_a_clear_error(arguments, error, broker_namespace):
    with pytest.raises(CommandError, match=error):
        call_command("outbox_replay", *arguments)


@pytest.mark.django_db
def test_an_unroutable_replayed_event_stops_the_replay_and_says_so(alice, bob, topology, broker_channel):
    send(alice, bob, 2)
    relay_pending_events()
    # A topology in which nothing is bound to the exchange: every event comes back.
    unbound = Topology(events=Exchange(f"{topology.events.name}.unbound", type="topic", durable=False))
    publisher = ConfirmingPublisher(topology=unbound)
    plan = plan_replay(ReplaySelection())

    try:
        with pytest.raises(ReplayStopped, match="unroutable") as stopped:
            replay_events(plan, publisher=publisher)
    finally:
        with contextlib.suppress(Exception):
            publisher._channel.exchange_delete(unbound.events.name)
        publisher.close()

    assert stopped.value.replayed == 0
    assert stopped.value.resume_after_id == 0
    assert str(stopped.value).endswith("; run it again once that is fixed")


@pytest.mark.django_db
def test_a_broker_outage_stops_the_replay_saying_how_far_it_got(alice, bob, topology, broker_channel):
    send(alice, bob, 3)
    relay_pending_events()
    take_and_ack(broker_channel, topology.queue_for("notifications"), 3)
    first_id = OutboxEvent.objects.order_by("id").values_list("id", flat=True).first()
    broker = urlsplit(settings.BROKER_URL)
    proxy = TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1").start()
    url = broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()
    publisher = ConfirmingPublisher(url=url, confirm_timeout=2)
    plan = plan_replay(ReplaySelection())

    try:
        with pytest.raises(ReplayStopped) as stopped:
            # The network fails once the first page is confirmed.
            replay_events(plan, batch_size=1, publisher=publisher, on_progress=lambda _: proxy.cut())
    finally:
        proxy.cut()
        publisher.close()

    assert stopped.value.replayed == 1
    assert stopped.value.total == 3
    assert stopped.value.resume_after_id == first_id
    assert "replay stopped after 1 of 3 events" in str(stopped.value)
    assert f"resume with --after-id {first_id}" in str(stopped.value)
    assert "guest:guest" not in str(stopped.value)

    call_command("outbox_replay", "--after-id", str(first_id))

    assert len(take_and_ack(broker_channel, topology.queue_for("notifications"), 3)) == 3


@contextlib.contextmanager
def running_notifications_consumer():
    consumer = NotificationsConsumer(prefetch=50)
    thread = run_in_thread(consumer)
    try:
        yield consumer
    finally:
        consumer.stop()
        thread.join(15)


@pytest.mark.django_db(transaction=True)
def test_a_consumer_rebuilds_lost_state_from_a_replay_once_its_inbox_entries_are_forgotten(
    alice, bob, topology, capsys
):
    messages = send(alice, bob, 3)
    messages[1].is_read = True
    messages[1].save()
    with running_notifications_consumer() as consumer:
        relay_pending_events()
        wait_until(lambda: Notification.objects.count() == 3, what="the live notifications")
        live = set(Notification.objects.values_list("message_id", "title", "content", "is_read", "source_event_id"))
        # The consumer's state is lost (a bad migration, a restore from an old backup).
        Notification.objects.filter(message__in=messages[:2]).delete()

        call_command("outbox_replay", "--consumer", "notifications")
        wait_until(lambda: consumer.stats.settled >= 8, what="the replay settled as duplicates")
        assert Notification.objects.count() == 1

        settled = consumer.stats.settled
        call_command("outbox_replay", "--consumer", "notifications", "--forget-inbox")
        wait_until(lambda: Notification.objects.count() == 3, what="the rebuilt notifications")
        wait_until(lambda: consumer.stats.settled >= settled + 4, what="the whole replay settled")

    assert "4 inbox entries forgotten" in capsys.readouterr().out
    rebuilt = set(Notification.objects.values_list("message_id", "title", "content", "is_read", "source_event_id"))
    assert rebuilt == live
    assert InboxEntry.objects.filter(consumer="notifications").count() == 4


@pytest.mark.django_db
def test_the_command_with_the_broker_down_fails_saying_nothing_was_replayed(alice, bob, topology, settings):
    send(alice, bob, 2)
    relay_pending_events()
    working = settings.BROKER_URL
    settings.BROKER_URL = "amqp://guest:secret-pw@127.0.0.1:1//"
    try:
        with pytest.raises(CommandError) as failed:
            call_command("outbox_replay")
    finally:
        settings.BROKER_URL = working  # the namespace fixture deletes its queues through it

    assert str(failed.value).startswith("replay stopped after 0 of 2 events: cannot connect to amqp://guest:**@")
    assert "secret-pw" not in str(failed.value)


@pytest.mark.django_db
def test_a_replay_to_a_partitioned_consumer_lands_each_event_on_its_aggregates_partition(
    alice, bob, topology, broker_channel, other_team_queue, capsys, settings
):
    settings.CONSUMER_PARTITIONS = 3
    partitions = load_topology().partitions_for("notifications")
    send(alice, bob, 8)
    relay_pending_events()

    def aggregates_per_partition() -> list[set[str]]:
        found = []
        for queue in partitions.queues:
            depth = queue_depth(broker_channel, queue)
            deliveries = take_and_ack(broker_channel, queue, depth) if depth else []
            found.append({delivery.headers[AGGREGATE_ID_HEADER] for delivery in deliveries})
        return found

    wait_until(lambda: sum(queue_depth(broker_channel, q) for q in partitions.queues) == 8, what="8 in partitions")
    first = aggregates_per_partition()
    take_and_ack(broker_channel, other_team_queue, 8)
    plain_depth = queue_depth(broker_channel, topology.queue_for("notifications"))

    call_command("outbox_replay", "--consumer", "notifications")

    assert f"through its hash exchange '{partitions.exchange.name}'" in capsys.readouterr().out
    wait_until(lambda: sum(queue_depth(broker_channel, q) for q in partitions.queues) == 8, what="8 replayed")
    assert aggregates_per_partition() == first
    assert queue_depth(broker_channel, other_team_queue) == 0
    assert queue_depth(broker_channel, topology.queue_for("notifications")) == plain_depth
