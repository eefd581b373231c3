"""The whole pipeline with the relay and the consumer as real processes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from collections import Counter

import pytest
from django.db.models import Count

from messaging.models import Message, Notification
from outbox.models import OutboxEvent
from tests.conftest import ROOT
from tests.helpers import env_with_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_of(process) -> str:
    return process.log_path.read_text(errors="replace")


def stop(process) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


def test_many_messages_between_several_users_give_each_receiver_exactly_one_notification_each(make_user, spawn_worker):
    users = [make_user() for _ in range(5)]
    relay = spawn_worker("relay")
    consumer = spawn_worker("consume_notifications")
    rng = random.Random(20261124)
    sent = []
    for _ in range(120):
        sender, receiver = rng.sample(users, 2)
        sent.append(Message.objects.create(sender=sender, receiver=receiver, content=f"hello {rng.random()}"))

    wait_until(lambda: Notification.objects.count() >= len(sent), timeout=60, what="a notification per message")

    per_message = dict(Notification.objects.values_list("message_id").annotate(n=Count("pk")))
    assert per_message == {message.pk: 1 for message in sent}
    expected_per_receiver = Counter(message.receiver_id for message in sent)
    actual_per_receiver = Counter(Notification.objects.values_list("user_id", flat=True))
    assert actual_per_receiver == expected_per_receiver
    # The consumer's notification.created events too, appended as it built the notifications.
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), what="every event published")
    assert OutboxEvent.objects.filter(event_type="notification.created").count() == len(sent)
    assert stop(relay) == 0
    assert stop(consumer) == 0


def test_marking_a_message_read_reaches_its_notification(alice, bob, spawn_worker):
    spawn_worker("relay")
    spawn_worker("consume_notifications")
    message = Message.objects.create(sender=alice, receiver=bob, content="read me")
    notification = wait_until(lambda: Notification.objects.filter(message=message).first(), what="the notification")
    assert notification.is_read is False

    message.is_read = True
    message.save()

    wait_until(
        lambda: Notification.objects.filter(message=message, is_read=True).exists(), what="the notification read"
    )


def test_events_published_before_the_consumer_ever_started_are_not_lost(alice, bob, spawn_worker):
    relay = spawn_worker("relay")
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"early {i}") for i in range(5)]
    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), what="the relay to publish")
    assert Notification.objects.count() == 0

    spawn_worker("consume_notifications")

    wait_until(lambda: Notification.objects.count() == len(messages), what="the early events to be consumed")
    assert stop(relay) == 0


def test_relay_and_consumer_stop_cleanly_on_sigterm_with_exit_code_0(spawn_worker):
    relay = spawn_worker("relay")
    consumer = spawn_worker("consume_notifications")
    wait_until(lambda: "relay.started" in log_of(relay), what="the relay to start")
    wait_until(lambda: "consumer.started" in log_of(consumer), what="the consumer to start")

    assert stop(relay) == 0
    assert stop(consumer) == 0
    assert "relay.stopped" in log_of(relay)
    assert "consumer.stopped" in log_of(consumer)


def test_relay_once_publishes_everything_pending_and_exits_0(alice, bob, worker_env):
    for i in range(3):
        Message.objects.create(sender=alice, receiver=bob, content=f"m{i}")

    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "relay", "--once"],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    assert "published 3 of 3" in finished.stdout
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_relay_once_with_the_broker_down_fails_with_a_clear_error(alice, bob, worker_env):
    Message.objects.create(sender=alice, receiver=bob, content="stuck")

    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "relay", "--once"],
        cwd=ROOT,
        env=env_with_broker(worker_env, "amqp://guest:secret-pw@127.0.0.1:1//"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    assert "cannot connect" in finished.stderr
    assert "secret-pw" not in finished.stderr + finished.stdout
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1


def test_no_message_content_reaches_the_worker_logs(alice, bob, spawn_worker):
    relay = spawn_worker("relay", env={"LOG_LEVEL": "DEBUG"})
    consumer = spawn_worker("consume_notifications", env={"LOG_LEVEL": "DEBUG"})
    secret = "the-launch-code-is-0000"
    message = Message.objects.create(sender=alice, receiver=bob, content=secret)
    wait_until(lambda: Notification.objects.filter(message=message).exists(), what="the notification")
    stop(relay)
    stop(consumer)

    assert secret not in log_of(relay)
    assert secret not in log_of(consumer)


def test_two_relays_together_publish_every_event_exactly_once(alice, bob, spawn_worker, topology, broker_channel):
    from tests.helpers import queue_depth

    for _ in range(2):
        spawn_worker("relay", env={"RELAY_BATCH_SIZE": "20"})
    messages = Message.objects.bulk_create(
        [Message(sender=alice, receiver=bob, content=f"bulk {i}") for i in range(300)]
    )

    wait_until(lambda: not OutboxEvent.objects.filter(published_at__isnull=True).exists(), what="all published")
    queue = topology.queue_for("notifications")
    # Both relays are idle now; the queue holds exactly what was confirmed, each event once.
    assert wait_until(lambda: queue_depth(broker_channel, queue) == len(messages), what="every event queued once")
