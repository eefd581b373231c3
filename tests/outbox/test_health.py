"""/healthz answers without touching anything; /readyz checks the database and the broker for real."""

from __future__ import annotations

import shutil
import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from outbox.models import WorkerHeartbeat
from tests.scraping import free_port

pytestmark = pytest.mark.django_db


def heartbeat(worker_id: str, kind: str, *, silent_for: float, **fields) -> WorkerHeartbeat:
    beat_at = timezone.now() - timedelta(seconds=silent_for)
    return WorkerHeartbeat.objects.create(
        worker_id=worker_id, kind=kind, hostname="host-a", pid=1234, started_at=beat_at, beat_at=beat_at, **fields
    )


@pytest.fixture
def closed_broker(settings):
    settings.BROKER_URL = f"amqp://guest:hunter2-secret@127.0.0.1:{free_port()}//"


@pytest.fixture
def closed_database(monkeypatch):
    # The readiness check opens its own connection from these settings; the test's stays open.
    monkeypatch.setitem(connection.settings_dict, "PORT", free_port())


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel completes them) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_healthz_answers_alive_without_database_or_broker(client, closed_broker, closed_database):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_runs_no_query(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert client.get("/healthz").status_code == 200


def test_readyz_is_ready_when_database_and_broker_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": {"ok": True}, "broker": {"ok": True}, "workers": {"ok": True}}
    assert "failing" not in body


def test_readyz_names_the_broker_when_it_is_unreachable(client, closed_broker):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["broker"]
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["broker"]["error"]
    assert "hunter2-secret" not in response.content.decode()


def test_readyz_is_ready_on_the_filesystem_broker_while_its_folders_are_usable(client, filesystem_broker):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == {"ok": True}


def test_readyz_names_the_filesystem_broker_when_its_queues_folder_is_gone(client, filesystem_broker):
    shutil.rmtree(filesystem_broker["data_folder_in"])

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]
    assert response.json()["checks"]["broker"] == {"ok": False, "error": "ConnectionError"}


def test_readyz_names_the_database_when_it_is_unreachable(client, closed_database):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"]["broker"] == {"ok": True}
    assert body["workers"] is None


def test_readyz_reports_workers_by_kind_alive_or_stalled(client, settings):
    settings.WORKER_STALL_SECONDS = 30
    heartbeat("relay-1", "relay", silent_for=1)
    heartbeat("relay-2", "relay", silent_for=120)
    heartbeat("consumer-1", "consumer.notifications", silent_for=2)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["workers"] == {
        "relay": {"alive": 1, "stalled": 1, "failing": 0},
        "consumer.notifications": {"alive": 1, "stalled": 0, "failing": 0},
    }
    # Which machine and process a worker runs on is for the ops dashboard, not a public probe.
    assert "host-a" not in response.content.decode()


def test_readyz_is_unavailable_while_a_live_worker_keeps_failing_and_says_why(client, settings):
    settings.WORKER_FAILING_AFTER = 3
    heartbeat("relay-1", "relay", silent_for=1, consecutive_failures=2, last_error="BrokerUnavailable: refused")
    heartbeat(
        "consumer-1",
        "consumer.notifications",
        silent_for=1,
        consecutive_failures=7,
        last_error="DatabaseUnavailable: OperationalError: the server closed the connection",
    )
    # Silent for long: its count is stale, the stall is reported instead.
    heartbeat("consumer-2", "consumer.notifications", silent_for=600, consecutive_failures=9)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["workers"]
    assert body["checks"]["workers"] == {
        "ok": False,
        "error": "consumer.notifications: 7 failures in a row, last DatabaseUnavailable",
    }
    assert body["workers"]["consumer.notifications"] == {"alive": 1, "stalled": 1, "failing": 1}
    assert body["workers"]["relay"]["failing"] == 0


def test_readyz_stays_ready_with_no_worker_running(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["workers"] == {}


def test_readyz_gives_up_on_a_broker_that_accepts_but_never_answers(client, settings, silent_port):
    settings.READINESS_TIMEOUT_SECONDS = 0.5
    settings.BROKER_URL = f"amqp://guest:guest@127.0.0.1:{silent_port}//"

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


def test_readyz_gives_up_on_a_database_that_accepts_but_never_answers(client, settings, silent_port, monkeypatch):
    settings.READINESS_TIMEOUT_SECONDS = 0.5
    monkeypatch.setitem(connection.settings_dict, "PORT", silent_port)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["failing"] == ["database"]
    assert response.json()["checks"]["database"]["error"] == "ConnectionTimeout"


def test_probes_and_metrics_answer_plain_http_where_everything_else_is_redirected(client, settings):
    # Orchestrators and Prometheus talk plain HTTP to the process; a redirect would fail them.
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/api/messages/").status_code == 301
    assert [client.get(path).status_code for path in ("/healthz", "/readyz", "/metrics")] == [200, 200, 200]
