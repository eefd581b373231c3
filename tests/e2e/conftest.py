"""Fixtures of the end-to-end tests: embedded data folders, and gunicorn as compose runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from config.embedded import postgres
from tests.conftest import ROOT
from tests.helpers import stop_processes, wait_until
from tests.scraping import free_port


def postgres_processes_of(pgdata: Path) -> list[psutil.Process]:
    """The postgres processes serving the data folder `pgdata`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(pgdata) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


@contextmanager
def embedded_data_folder() -> Iterator[Path]:
    """A fresh EMBEDDED_DATA_DIR outside pytest's temporary root; its PostgreSQL is gone at the end.

    Run as root, pgserver runs PostgreSQL as another user, who must reach the data folder; pytest
    makes its root private (0700) again whenever a session starts, as another one on this machine
    may do while a test runs.
    """
    folder = Path(tempfile.mkdtemp(prefix="embedded-data-"))
    try:
        yield folder
    finally:
        postgres.stop(folder / "pgdata")
        wait_until(
            lambda: not postgres_processes_of(folder / "pgdata"), timeout=30, what="the embedded PostgreSQL to exit"
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    with embedded_data_folder() as folder:
        yield folder


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
