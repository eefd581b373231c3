"""A real web process under a burst: the send limit holds exactly, connections stay bounded, and a
database that refuses is a 503, never a 500."""

from __future__ import annotations

import collections
import itertools
import json
import threading
import urllib.error
import urllib.request

import pytest

from messaging import services
from messaging.models import Message
from tests.e2e.conftest import answers_healthz
from tests.helpers import clear_of_window_end, other_database_session, wait_until
from tests.scraping import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIMIT = 20
CLIENTS = 32
WORKERS, THREADS, POOL = 2, 16, 4


def post_message(port: int, token: str, receiver: str) -> tuple[int, str | None]:
    """POST one message; its status and Retry-After header."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/messages/",
        data=json.dumps({"receiver": receiver, "content": "burst"}).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - a fixed local http URL
            return response.status, response.headers.get("Retry-After")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers.get("Retry-After")


def burst(port: int, token: str, receiver: str, requests: int) -> list[tuple[int, str | None]]:
    """`requests` POSTs from CLIENTS threads released together."""
    numbers = itertools.count()
    start = threading.Barrier(CLIENTS)
    results: list[tuple[int, str | None]] = []

    def client() -> None:
        start.wait()
        while next(numbers) < requests:
            results.append(post_message(port, token, receiver))

    clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=120)
    return results


# libpq names the server's sessions after this (PGAPPNAME), so they can be counted apart from this test's.
WEB_APPLICATION_NAME = "burst-test-web"


def sessions_of_the_web_process() -> int:
    with other_database_session() as session:
        return session.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [WEB_APPLICATION_NAME]
        ).fetchone()[0]


def test_a_burst_of_three_times_the_limit_from_32_clients_lets_exactly_the_limit_through(alice, bob, gunicorn):
    token = services.issue_api_token(alice)
    port = gunicorn(
        f"--workers={WORKERS}",
        f"--threads={THREADS}",
        env={
            "API_MESSAGE_CREATE_RATE": f"{LIMIT}/hour",
            "DATABASE_POOL_MAX_SIZE": str(POOL),
            # Waiting for a pooled connection is the point here, not a 503.
            "DATABASE_POOL_TIMEOUT_SECONDS": "60",
            "PGAPPNAME": WEB_APPLICATION_NAME,
        },
    )
    wait_until(lambda: answers_healthz(port), timeout=60, what="gunicorn to answer")
    clear_of_window_end(3600, margin=60)

    results = burst(port, token, bob.username, requests=3 * LIMIT)

    statuses = collections.Counter(status for status, _ in results)
    assert statuses == {201: LIMIT, 429: 2 * LIMIT}
    waits = [int(retry_after) for status, retry_after in results if status == 429]
    assert all(0 < wait <= 3600 for wait in waits)
    assert Message.objects.filter(sender=alice).count() == LIMIT
    # 32 requests at once, and no more sessions than the pools hold.
    assert 0 < sessions_of_the_web_process() <= WORKERS * POOL


def test_a_web_process_whose_database_is_down_answers_503_with_retry_after(gunicorn):
    dead_database = f"postgres://postgres@127.0.0.1:{free_port()}/nothing_listens_here"
    port = gunicorn(env={"DATABASE_URL": dead_database, "DATABASE_POOL_TIMEOUT_SECONDS": "1"})
    wait_until(lambda: answers_healthz(port), timeout=60, what="gunicorn to answer")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/messages/", headers={"Authorization": "Token " + "0" * 40}
    )

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 - a fixed local http URL

    assert answer.value.code == 503
    assert answer.value.headers["Retry-After"] == "1"
    assert answer.value.headers["Content-Type"] == "application/json"
    body = json.loads(answer.value.read())
    assert body["detail"] == "The database is unavailable; try again later."
    assert body["request_id"] == answer.value.headers["X-Request-ID"]
