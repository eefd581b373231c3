"""docker-compose.yml cannot run here (no Docker engine), so it is checked against the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "relay", "consumer")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def settings_variables() -> set[str]:
    source = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"""(?:os\.environ\.get|_env_\w+)\(\s*["']([A-Z_]+)["']""", source))


def command_words(command) -> list[str]:
    return command if isinstance(command, list) else shlex.split(command)


def test_the_stack_has_every_service(compose):
    assert set(compose["services"]) == {"postgres", "rabbitmq", *APP_SERVICES}


def test_every_compose_environment_variable_is_read_by_settings(compose):
    known = settings_variables()
    assert {"DATABASE_URL", "BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"} <= known
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert set(environment) <= known, f"{name} sets variables settings.py never reads"


def test_app_services_reach_the_compose_postgres_and_rabbitmq(compose):
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        database = urlsplit(environment["DATABASE_URL"])
        broker = urlsplit(environment["BROKER_URL"])
        assert (database.scheme, database.hostname, database.port) == ("postgres", "postgres", 5432)
        assert database.path.lstrip("/") == compose["services"]["postgres"]["environment"]["POSTGRES_DB"]
        assert database.password == compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
        assert (broker.scheme, broker.hostname, broker.port) == ("amqp", "rabbitmq", 5672)


def test_every_manage_py_command_in_compose_exists(compose):
    commands = get_commands()
    for name in APP_SERVICES:
        words = command_words(compose["services"][name]["command"])
        assert words[:2] == ["python", "manage.py"]
        assert words[2] in commands, f"{name} runs an unknown management command {words[2]!r}"


def test_every_procfile_command_exists():
    commands = get_commands()
    for line in (ROOT / "Procfile").read_text().splitlines():
        words = shlex.split(line.split(":", 1)[1])
        words = words[1:] if words[0] == "exec" else words
        assert words[:2] == ["python", "manage.py"]
        assert words[2] in commands, line


def test_published_ports(compose):
    services = compose["services"]
    assert services["web"]["ports"] == ["8000:8000"]
    assert services["rabbitmq"]["ports"] == ["5672:5672", "15672:15672"]
    assert "management" in services["rabbitmq"]["image"]


def test_start_order_waits_for_healthy_services_and_the_migration(compose):
    services = compose["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("web", "relay", "consumer"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "rabbitmq": {"condition": "service_healthy"},
        }
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["rabbitmq"]
