"""Real web processes for the end-to-end tests: gunicorn as compose runs it, on a free port."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT
from tests.helpers import stop_processes
from tests.scraping import free_port


@pytest.fixture
def gunicorn(worker_env, tmp_path):
    """Start the web process as compose does (gunicorn with our config) on a free port."""
    started: list[subprocess.Popen] = []

    def start(*options: str, env: dict) -> int:
        port = free_port()
        log = (tmp_path / f"gunicorn-{len(started)}.log").open("wb")
        command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "--bind", f"127.0.0.1:{port}"]
        process = subprocess.Popen(
            [*command, *options, "config.wsgi:application"],
            cwd=ROOT,
            env={**worker_env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        return port

    yield start
    stop_processes(started, timeout=20)


def answers_healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False
