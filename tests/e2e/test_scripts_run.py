"""`scripts/run` as a user runs it: the embedded backends, real processes, ports of the test's own.

Each test gives the script a fresh EMBEDDED_DATA_DIR and free ports, waits until its web answers,
and stops it as Ctrl-C does (SIGINT to its process group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from config.embedded import postgres
from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.scraping import free_port

pytestmark = pytest.mark.e2e

# Settings this machine's environment may carry that would pull the run off the defaults.
_UNSET = ("DATABASE_URL", "BROKER_URL", "BROKER_NAMESPACE", "OUTBOX_FAILPOINTS", "EMBEDDED_DATA_DIR")
SCRIPT = str(ROOT / "scripts" / "run")


@pytest.fixture
def run_env(embedded_data_dir):
    env = {name: value for name, value in os.environ.items() if name not in _UNSET}
    env.update(
        EMBEDDED_DATA_DIR=str(embedded_data_dir),
        WEB_PORT=str(free_port()),
        RELAY_METRICS_PORT=str(free_port()),
        CONSUMER_METRICS_PORT=str(free_port()),
        LOG_LEVEL="INFO",
    )
    return env


@pytest.fixture
def start_run(run_env, tmp_path):
    """Start scripts/run in a session of its own; whatever is still running is interrupted at the end."""
    runs = []

    def start() -> subprocess.Popen:
        log_path = tmp_path / f"run-{len(runs)}.log"
        output = log_path.open("wb")
        process = subprocess.Popen(
            [SCRIPT], cwd=ROOT, env=run_env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        process.log_path = log_path
        runs.append(process)
        return process

    yield start
    for process in runs:
        if process.poll() is None:
            interrupt(process)


def interrupt(process: subprocess.Popen) -> int:
    """Ctrl-C: SIGINT to the run's whole process group; its exit code once it has exited."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def get(port: str, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_until_serving(process: subprocess.Popen, env: dict) -> None:
    def answers() -> bool:
        assert process.poll() is None, f"scripts/run exited:\n{process.log_path.read_text(errors='replace')}"
        try:
            return get(env["WEB_PORT"], "/readyz")[0] == 200
        except OSError:
            return False

    wait_until(answers, timeout=180, interval=0.5, what="scripts/run's web to answer /readyz")


def test_a_second_run_refuses_before_touching_anything_and_the_first_keeps_serving(
    run_env, start_run, embedded_data_dir
):
    first = start_run()
    wait_until_serving(first, run_env)

    second = subprocess.run([SCRIPT], cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=60)

    assert second.returncode != 0
    assert f"another scripts/run (pid {first.pid}) is running" in second.stderr
    assert get(run_env["WEB_PORT"], "/readyz")[0] == 200
    assert postgres.is_running(embedded_data_dir / "pgdata")
    # This run started the embedded PostgreSQL, so it stops it on its way out.
    interrupt(first)
    assert not postgres.is_running(embedded_data_dir / "pgdata")


def test_a_run_serves_the_workers_metrics_says_where_and_logs_a_client_error_once(run_env, start_run):
    run = start_run()
    wait_until_serving(run, run_env)
    relay_port, consumer_port = run_env["RELAY_METRICS_PORT"], run_env["CONSUMER_METRICS_PORT"]

    def serves_metrics(port: str) -> bool:
        try:
            return get(port, "/metrics")[0] == 200
        except OSError:
            return False

    wait_until(lambda: serves_metrics(relay_port), timeout=60, what="the relay's metrics listener")
    wait_until(lambda: serves_metrics(consumer_port), timeout=60, what="the consumer's metrics listener")
    assert "outbox_events_published_total" in get(relay_port, "/metrics")[1]
    web_metrics = get(run_env["WEB_PORT"], "/metrics")[1]
    assert f"# relay: http://127.0.0.1:{relay_port}/metrics" in web_metrics
    assert f"# consumer: http://127.0.0.1:{consumer_port}/metrics" in web_metrics

    assert get(run_env["WEB_PORT"], "/api/no-such-endpoint/")[0] == 404
    access_line = '"GET /api/no-such-endpoint/ HTTP/1.1" 404'
    wait_until(lambda: access_line in run.log_path.read_text(), timeout=30, what="the 404's access line")
    assert run.log_path.read_text().count("/api/no-such-endpoint/") == 1


def test_a_run_leaves_running_the_embedded_postgres_it_did_not_start(run_env, start_run, embedded_data_dir):
    pgdata = embedded_data_dir / "pgdata"
    assert postgres.start(pgdata)
    run = start_run()
    wait_until_serving(run, run_env)

    interrupt(run)

    assert postgres.is_running(pgdata)
    assert "the embedded PostgreSQL was already running; this run leaves it running" in run.log_path.read_text()
