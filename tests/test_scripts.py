"""What scripts/test and scripts/run tell a newcomer before they change the machine, or when it lacks a service."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "lib" / "services.sh"


def run_services_function(snippet: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Source scripts/lib/services.sh, then run `snippet`, with tmp_path/bin's fakes first on PATH."""
    return subprocess.run(
        ["bash", "-c", f'source "{SERVICES}"; PATH="{tmp_path / "bin"}:$PATH"; {snippet}'],
        capture_output=True,
        text=True,
        timeout=30,
    )


def fake_command(tmp_path: Path, name: str, script: str) -> None:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_the_chromium_install_is_explained_before_apt_get_runs(tmp_path):
    fake_command(tmp_path, "id", "echo 0")
    fake_command(tmp_path, "apt-get", 'echo "apt-get called: $*" >&2')

    result = run_services_function(f'CHROMIUM="{tmp_path / "no-chromium"}"; ensure_chromium', tmp_path)

    explanation, _, after = result.stderr.partition("apt-get called")
    assert after, result.stderr
    assert "the ops dashboard's browser test drives it through Playwright" in explanation
    assert "installing Debian's chromium package system-wide, as root" in explanation


@pytest.mark.parametrize(
    ("unreachable", "setup", "advice"),
    [
        (
            "postgres_ready",
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test ensure_postgres",
            "install it (on Debian: apt-get install postgresql) or point DATABASE_URL at one",
        ),
        (
            "port_open",
            "BROKER_URL=amqp://guest:guest@127.0.0.1:5672// ensure_rabbitmq",
            "install it (on Debian: apt-get install rabbitmq-server) or point BROKER_URL at one",
        ),
    ],
)
def test_a_missing_service_says_what_to_install(tmp_path, unreachable, setup, advice):
    # The service does not answer and none of its commands are on PATH.
    snippet = f'{unreachable}() {{ false; }}; PATH="{tmp_path / "bin"}"; {setup}'

    result = run_services_function(snippet, tmp_path)

    assert result.returncode != 0
    assert advice in result.stderr
