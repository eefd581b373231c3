"""The README's bare-machine default: no DATABASE_URL, no BROKER_URL, real processes.

Every process runs with both URLs unset and its own EMBEDDED_DATA_DIR, so it starts (or finds)
the embedded PostgreSQL and uses kombu's filesystem transport there. One embedded server serves
the module and is stopped afterwards; no postgres process of it may outlive the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import dj_database_url
import psycopg
import pytest

from config.embedded import postgres
from outbox.broker import ROLE_URL_SETTINGS
from tests.conftest import ROOT
from tests.e2e.conftest import embedded_data_folder, postgres_processes_of
from tests.helpers import stop_processes, wait_until

pytestmark = pytest.mark.e2e

# Settings this machine's environment may carry that would pull a process off the defaults.
_UNSET = ("DATABASE_URL", "BROKER_URL", *ROLE_URL_SETTINGS, "BROKER_NAMESPACE", "OUTBOX_FAILPOINTS")


@pytest.fixture(scope="module")
def data_dir():
    """A fresh EMBEDDED_DATA_DIR; its embedded PostgreSQL is stopped when the module ends."""
    with embedded_data_folder() as folder:
        yield folder


@pytest.fixture(scope="module")
def bare_env(data_dir):
    env = {name: value for name, value in os.environ.items() if name not in _UNSET}
    env.update(EMBEDDED_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", LOG_LEVEL="INFO")
    # Long enough that only NOTIFY can wake the relay in time (see the test).
    env["RELAY_POLL_INTERVAL_SECONDS"] = "300"
    return env


@pytest.fixture(scope="module")
def migrated(bare_env):
    manage("migrate", "--noinput", env=bare_env)
    return bare_env


def manage(*command: str, env: dict) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"manage.py {command[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def workers(migrated, tmp_path):
    processes = []

    def spawn(command: str) -> subprocess.Popen:
        log_path = tmp_path / f"{command}.log"
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), command],
            cwd=ROOT,
            env=migrated,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        process.log_path = log_path
        processes.append(process)
        return process

    yield spawn
    stop_processes(processes)


def embedded_connection(data_dir) -> psycopg.Connection:
    url = postgres.running_url(data_dir / "pgdata")
    assert url, "the embedded PostgreSQL is not running"
    config = dj_database_url.parse(url)
    return psycopg.connect(host=config["HOST"], port=config["PORT"], user=config["USER"], dbname=config["NAME"])


def test_a_message_reaches_its_notification_through_relay_and_consumer_on_the_embedded_backends(
    data_dir, migrated, workers
):
    relay = workers("relay")
    consumer = workers("consume_notifications")

    def both_workers_beat() -> bool:
        with embedded_connection(data_dir) as connection:
            pids = {pid for (pid,) in connection.execute("SELECT pid FROM outbox_workerheartbeat").fetchall()}
        return {relay.pid, consumer.pid} <= pids

    # The relay beats after its first claim, with its LISTEN already open; from then on, with a
    # poll interval of 300 s, only PostgreSQL's NOTIFY can wake it within the deadline below.
    wait_until(both_workers_beat, timeout=60, interval=0.2, what="the relay's and the consumer's heartbeats")
    content = f"hello {uuid.uuid4()}"
    # Written by a third process, as the web process would.
    out = manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model\n"
        "from messaging.services import send_message\n"
        "User = get_user_model()\n"
        "sender, _ = User.objects.get_or_create(username='embedded-sender')\n"
        "receiver, _ = User.objects.get_or_create(username='embedded-receiver')\n"
        f"print('message_id=' + str(send_message(sender=sender, receiver=receiver, content={content!r}).pk))",
        env=migrated,
    )
    message_id = out.split("message_id=", 1)[1].split()[0]

    def notification_of_message():
        with embedded_connection(data_dir) as connection:
            return connection.execute(
                "SELECT u.username FROM messaging_notification n JOIN auth_user u ON u.id = n.user_id "
                "WHERE n.message_id = %s",
                [message_id],
            ).fetchall()

    rows = wait_until(notification_of_message, timeout=60, interval=0.2, what="the message's notification")
    assert rows == [("embedded-receiver",)]
    with embedded_connection(data_dir) as connection:
        pending = connection.execute("SELECT count(*) FROM outbox_outboxevent WHERE published_at IS NULL").fetchone()
    assert pending == (0,)
    for process in (relay, consumer):
        log = process.log_path.read_text(errors="replace")
        # Each process says which backends it uses (the outbox app's start-up line, as the
        # README shows it), and the message's content is in no log.
        database = f"database=postgres://postgres@{data_dir / 'pgdata'}"
        assert f"logger=messaging.apps pid={process.pid} backends {database}" in log
        assert f"broker=filesystem:// (folder {data_dir / 'broker' / 'messages'})" in log
        assert content not in log
    assert "relay.started broker=filesystem://" in relay.log_path.read_text()


def test_importing_the_settings_and_manage_py_check_start_no_embedded_postgres(bare_env, tmp_path):
    env = {**bare_env, "EMBEDDED_DATA_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
        timeout=60,
    )
    manage("check", env=env)

    assert not postgres.is_running(tmp_path / "pgdata")
    assert not postgres_processes_of(tmp_path / "pgdata")


def test_a_command_that_starts_the_embedded_postgres_says_so_and_how_to_stop_it(bare_env, embedded_data_dir):
    env = {**bare_env, "EMBEDDED_DATA_DIR": str(embedded_data_dir)}
    connect = ("shell", "-c", "from django.db import connection; connection.ensure_connection()")
    first = manage(*connect, env=env)
    second = manage(*connect, env=env)

    assert "embedded_postgres.started" in first
    assert "stop it with: python manage.py embedded_postgres stop" in first
    # The server was running by then: nothing to say.
    assert "embedded_postgres.started" not in second
