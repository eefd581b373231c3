"""Metrics from real processes: the relay's and the consumer's own listeners, and gunicorn's workers summed."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from messaging import services
from messaging.models import Message, Notification
from tests.conftest import ROOT
from tests.e2e.conftest import answers_healthz
from tests.helpers import wait_until
from tests.scraping import free_port, sample, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def scrape_when_up(port: int, **options) -> dict:
    def attempt():
        try:
            return scrape(port, **options)
        except (urllib.error.URLError, ConnectionError):
            return None

    return wait_until(attempt, timeout=30, what=f"metrics on port {port}")


def scrape_until(port: int, name: str, expected: float, **labels: str) -> dict:
    """Scrape `port` until the sample `name` reaches `expected`; the last scrape."""

    def reached():
        samples = scrape(port)
        return samples if sample(samples, name, **labels) == expected else None

    return wait_until(reached, timeout=30, what=f"{name} to reach {expected} on port {port}")


def test_relay_and_consumer_each_serve_their_own_metrics(alice, bob, spawn_worker):
    relay_port, consumer_port = free_port(), free_port()
    relay = spawn_worker("relay", env={"RELAY_METRICS_PORT": str(relay_port)})
    consumer = spawn_worker("consume_notifications", env={"CONSUMER_METRICS_PORT": str(consumer_port)})
    scrape_when_up(relay_port)
    scrape_when_up(consumer_port)

    for number in range(5):
        Message.objects.create(sender=alice, receiver=bob, content=f"hello {number}")
    wait_until(lambda: Notification.objects.count() == 5, timeout=30, what="five notifications")

    # The five messages' events, then the five notification.created the consumer appended.
    relayed = scrape_until(relay_port, "outbox_events_published_total", 10)
    consumed = scrape_until(consumer_port, "outbox_consumer_events_processed_total", 5, consumer="notifications")
    assert sample(relayed, "relay_batch_size_events_sum") == 10
    assert sample(relayed, "relay_publish_confirm_seconds_count") >= 1
    assert sample(consumed, "outbox_end_to_end_latency_seconds_count", consumer="notifications") == 5
    assert sample(consumed, "messaging_notifications_created_total") == 5
    # The backlog is the web process's to report; a worker reporting it too would double the sums.
    for samples in (relayed, consumed):
        assert sample(samples, "outbox_pending_events") is None
    relay.send_signal(signal.SIGTERM)
    consumer.send_signal(signal.SIGTERM)
    assert relay.wait(timeout=15) == 0
    assert consumer.wait(timeout=15) == 0


def test_a_taken_metrics_port_stops_the_worker_with_the_reason(spawn_worker):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        relay = spawn_worker("relay", env={"RELAY_METRICS_PORT": str(port)})

        assert relay.wait(timeout=30) == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in relay.log_path.read_text()


def send_through_api(port: int, token: str, receiver: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/messages/",
        data=json.dumps({"receiver": receiver, "content": "hello over http"}).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a fixed local http URL
        return response.status


def test_gunicorn_workers_add_up_to_one_count_and_one_backlog(alice, bob, gunicorn, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    # A previous run's file, with 1000 appends in it: starting afresh must not add them in.
    stale = subprocess.run(
        [sys.executable, "-c", "from outbox.metrics import count_appended; count_appended({'message.created': 1000})"],
        cwd=ROOT,
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"},
        check=False,
        capture_output=True,
        text=True,
    )
    assert stale.returncode == 0, stale.stderr
    token = services.issue_api_token(alice)
    # Every worker answers one request, then gunicorn replaces it: each write below is served by
    # a different process, and only the sum across processes, dead ones included, can be right.
    port = gunicorn("--max-requests", "1", env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    wait_until(lambda: answers_healthz(port), timeout=60, what="gunicorn to answer")

    statuses = [send_through_api(port, token, bob.username) for _ in range(4)]

    assert statuses == [201] * 4
    samples = scrape(port)
    assert sample(samples, "outbox_events_appended_total", event_type="message.created") == 4
    assert sample(samples, "outbox_pending_events") == 4
    assert len({path.name for path in directory.glob("counter_*.db")}) >= 4
