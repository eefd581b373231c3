"""The project's shape: three Django apps of its own, and the commands its scripts call exist."""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent


def test_the_projects_own_apps_are_messaging_outbox_and_relay():
    # Top-level folders of the repository only: a .venv inside it holds third-party apps.
    own = {config.name for config in apps.get_app_configs() if Path(config.path).parent == ROOT}

    assert own == {"messaging", "outbox", "relay"}


def test_every_command_scripts_run_calls_is_a_management_command_that_exists():
    called = set(re.findall(r"manage\.py (\w+)", (ROOT / "scripts" / "run").read_text()))

    assert {"show_backends", "embedded_postgres", "migrate"} <= called
    assert called <= set(get_commands())
