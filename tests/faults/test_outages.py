"""Broker and database outages under the real worker processes: one clear line, then carry on."""

from __future__ import annotations

import signal
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from messaging.models import Message, Notification
from outbox.models import OutboxEvent
from tests.helpers import terminate_other_database_sessions, wait_until
from tooling.faults.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker_proxy():
    broker = urlsplit(settings.BROKER_URL)
    proxy = TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1").start()
    yield proxy
    proxy.cut()


def proxied_broker_url(proxy: TcpProxy) -> str:
    broker = urlsplit(settings.BROKER_URL)
    return broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()


def log_of(process) -> str:
    return process.log_path.read_text(errors="replace")


def outage_lines(process, worker: str) -> list[str]:
    return [line for line in log_of(process).splitlines() if f"{worker}.outage " in line]


def all_published() -> bool:
    return not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def stop(process) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=10)


def test_relay_logs_a_broker_outage_once_retries_and_publishes_when_it_returns(alice, bob, spawn_worker, broker_proxy):
    relay = spawn_worker(
        "relay",
        env={"BROKER_URL": proxied_broker_url(broker_proxy), "RELAY_MAX_BACKOFF_SECONDS": "0.5", "LOG_LEVEL": "DEBUG"},
    )
    wait_until(lambda: "relay.started" in log_of(relay), what="the relay to start")
    Message.objects.create(sender=alice, receiver=bob, content="before")
    wait_until(all_published, what="the first event published")

    broker_proxy.cut()
    messages = [Message.objects.create(sender=alice, receiver=bob, content=f"during {i}") for i in range(3)]
    wait_until(lambda: log_of(relay).count("relay.outage_continues") >= 3, what="several retries during the outage")

    assert len(outage_lines(relay, "relay")) == 1
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == len(messages)

    broker_proxy.restore()
    wait_until(all_published, timeout=20, what="the backlog published after the broker returned")
    # The relay logs its recovery after the batch's commit and its next heartbeat, so the line
    # may follow the events being seen as published by a moment.
    wait_until(lambda: "relay.recovered" in log_of(relay), what="the relay's recovery line")
    assert stop(relay) == 0


def test_relay_survives_its_database_connections_being_terminated(alice, bob, spawn_worker):
    relay = spawn_worker("relay", env={"RELAY_MAX_BACKOFF_SECONDS": "0.5"})
    wait_until(lambda: "relay.started" in log_of(relay), what="the relay to start")
    Message.objects.create(sender=alice, receiver=bob, content="before")
    wait_until(all_published, what="the first event published")

    assert terminate_other_database_sessions() >= 1
    Message.objects.create(sender=alice, receiver=bob, content="after")

    wait_until(all_published, timeout=20, what="the event written after the termination published")
    assert len(outage_lines(relay, "relay")) == 1
    assert stop(relay) == 0


def test_consumer_logs_a_broker_outage_once_and_consumes_again_when_it_returns(alice, bob, spawn_worker, broker_proxy):
    spawn_worker("relay")
    consumer = spawn_worker(
        "consume_notifications",
        env={
            "BROKER_URL": proxied_broker_url(broker_proxy),
            "CONSUMER_MAX_BACKOFF_SECONDS": "0.5",
            "LOG_LEVEL": "DEBUG",
        },
    )
    Message.objects.create(sender=alice, receiver=bob, content="before")
    wait_until(lambda: Notification.objects.count() == 1, what="the first notification")

    broker_proxy.cut()
    for i in range(3):
        Message.objects.create(sender=alice, receiver=bob, content=f"during {i}")
    wait_until(lambda: log_of(consumer).count("outage_continues") >= 3, what="several retries during the outage")
    assert Notification.objects.count() == 1
    assert len(outage_lines(consumer, "consumer.notifications")) == 1

    broker_proxy.restore()
    wait_until(lambda: Notification.objects.count() == 4, timeout=20, what="the notifications after the outage")
    assert "recovered" in log_of(consumer)
    assert stop(consumer) == 0


def test_consumer_survives_its_database_connection_being_terminated(alice, bob, spawn_worker):
    spawn_worker("relay")
    consumer = spawn_worker("consume_notifications", env={"CONSUMER_MAX_BACKOFF_SECONDS": "0.5"})
    Message.objects.create(sender=alice, receiver=bob, content="before")
    wait_until(lambda: Notification.objects.count() == 1, what="the first notification")

    assert terminate_other_database_sessions() >= 1
    for i in range(3):
        Message.objects.create(sender=alice, receiver=bob, content=f"after {i}")

    wait_until(lambda: Notification.objects.count() == 4, timeout=20, what="the notifications after the termination")
    per_message = Notification.objects.values_list("message_id", flat=True)
    assert len(set(per_message)) == 4
    assert stop(consumer) == 0
