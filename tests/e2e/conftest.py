"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from config.embedded import postgres
from tests.helpers import wait_until


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
