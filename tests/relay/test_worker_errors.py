"""Workers' outages reach their heartbeat, where the ops dashboard shows them as recent errors."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.conf import settings

from messaging.consumers import NotificationsConsumer
from outbox.models import WorkerHeartbeat
from outbox.status import recent_errors
from relay.amqp_publisher import ConfirmingPublisher
from relay.relay import Relay
from tests.helpers import run_in_thread, wait_until
from tooling.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down():
    """A way to the broker that refuses connections until `restore()`."""
    broker = urlsplit(settings.BROKER_URL)
    proxy = TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1").start()
    proxy.cut()
    proxy.url = broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()
    yield proxy
    proxy.cut()


def error_on_heartbeat(worker_id: str) -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.filter(worker_id=worker_id).exclude(last_error="").first()


def outage_seen_then_recovered(worker, broker_down) -> tuple[WorkerHeartbeat, list[str]]:
    """The worker's heartbeat row once it shows the outage, and the sources of the recent errors then."""
    runner = run_in_thread(worker)
    try:
        wait_until(lambda: worker._outages.in_outage, what="the worker to meet the broker outage")
        broker_down.restore()
        row = wait_until(
            lambda: error_on_heartbeat(worker.heartbeat.worker_id), what="the outage to be written to the heartbeat"
        )
        # Read while the worker runs: a clean stop clears its heartbeat, and its error with it.
        return row, [error.source for error in recent_errors()]
    finally:
        worker.stop()
        runner.join(15)
        assert not runner.is_alive()


def test_a_relay_writes_its_broker_outage_to_its_heartbeat_once_it_can(broker_namespace, broker_down):
    relay = Relay(publisher=ConfirmingPublisher(url=broker_down.url), max_backoff=0.2, poll_interval=1)

    row, error_sources = outage_seen_then_recovered(relay, broker_down)

    assert row.last_error.startswith("BrokerUnavailable: ")
    assert "guest:guest@" not in row.last_error, "no password"
    assert row.last_error_at is not None
    assert error_sources == [f"relay {relay.heartbeat.worker_id}"]


def test_a_consumer_writes_its_broker_outage_to_its_heartbeat_once_it_can(broker_namespace, broker_down):
    consumer = NotificationsConsumer(url=broker_down.url, max_backoff=0.2)

    row, error_sources = outage_seen_then_recovered(consumer, broker_down)

    assert row.kind == "consumer.notifications"
    assert "refused" in row.last_error.lower()
    assert "guest:guest@" not in row.last_error, "no password"
    assert error_sources == [f"consumer.notifications {consumer.heartbeat.worker_id}"]
