"""The project's shape: three Django apps of its own, and the commands its scripts call exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.apps import apps
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent


def test_the_projects_own_apps_are_messaging_outbox_relay_and_tooling():
    # Top-level folders of the repository only: a .venv inside it holds third-party apps.
    own = {config.name for config in apps.get_app_configs() if Path(config.path).parent == ROOT}

    assert own == {"messaging", "outbox", "relay", "tooling"}


def test_every_command_scripts_run_calls_is_a_management_command_that_exists():
    called = set(re.findall(r"manage\.py (\w+)", (ROOT / "scripts" / "run").read_text()))

    assert {"show_backends", "embedded_postgres", "migrate"} <= called
    assert called <= set(get_commands())


# Each app may import only the apps after it: messaging -> relay -> outbox. The tooling measures
# and breaks them all, so it may import any of them and none of them may import it.
LAYERS = ("tooling", "messaging", "relay", "outbox")


def imported_apps(path: Path) -> set[str]:
    """The top-level packages a Python file imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_app_imports_an_app_above_it():
    back_edges = []
    for rank, app in enumerate(LAYERS):
        above = set(LAYERS[:rank])
        for path in sorted((ROOT / app).rglob("*.py")):
            back_edges += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(imported_apps(path) & above)]

    assert back_edges == []


def test_the_import_check_sees_a_back_edge(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("def late():\n    from relay.replay import replay_events\n")

    assert imported_apps(module) == {"relay"}
