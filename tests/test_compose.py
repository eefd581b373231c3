"""docker-compose.yml cannot run here (no Docker engine), so it is checked against the code."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "relay", "consumer")
LONG_RUNNING_APP_SERVICES = ("web", "relay", "consumer")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def settings_variables() -> set[str]:
    """The environment variables config/settings.py reads, found in its source."""
    source = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r"""(?:os\.environ\.get|_env_\w+)\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))


def command_words(command: str | list[str]) -> list[str]:
    return command if isinstance(command, list) else shlex.split(command)


def management_command(words: list[str]) -> str:
    """The management command `python manage.py X ...` runs, after an optional `exec`."""
    words = words[1:] if words[:1] == ["exec"] else words
    assert words[:2] == ["python", "manage.py"], f"{shlex.join(words)} is not a manage.py command"
    return words[2]


def procfile_commands() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = shlex.split(command)
    return entries


def test_the_stack_has_postgres_rabbitmq_and_every_app_service(services):
    assert set(services) == {"postgres", "rabbitmq", *APP_SERVICES}


def test_settings_reads_the_variables_compose_relies_on():
    assert {"DATABASE_URL", "BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"} <= settings_variables()


def test_every_compose_environment_variable_is_read_by_settings(services):
    known = settings_variables()
    for name in APP_SERVICES:
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which config/settings.py never reads"


def test_app_services_share_one_build_and_environment(compose, services):
    app = compose["x-app"]
    assert app["build"] == "."
    assert (ROOT / "Dockerfile").is_file()
    for name in APP_SERVICES:
        assert services[name]["build"] == app["build"]
        assert services[name]["environment"] == app["environment"]


def test_settings_accept_the_compose_environment(compose):
    # settings.py refuses bad values (DEBUG=maybe, DEBUG off without SECRET_KEY) at import.
    environment = {**os.environ, **{key: str(value) for key, value in compose["x-app"]["environment"].items()}}
    environment["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DEBUG)"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_compose_runs_the_production_settings(compose):
    environment = compose["x-app"]["environment"]

    assert environment["ENVIRONMENT"] == "production"
    assert environment["DEBUG"] == "false"


def test_database_url_points_at_the_compose_postgres_service(services):
    postgres = services["postgres"]["environment"]
    for name in APP_SERVICES:
        database = urlsplit(services[name]["environment"]["DATABASE_URL"])
        assert database.scheme == "postgres"
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.path.lstrip("/") == postgres["POSTGRES_DB"]
        assert database.username == postgres.get("POSTGRES_USER", "postgres")
        assert database.password == postgres["POSTGRES_PASSWORD"]


def test_broker_url_points_at_the_compose_rabbitmq_service(services):
    for name in APP_SERVICES:
        broker = urlsplit(services[name]["environment"]["BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port) == ("amqp", "rabbitmq", 5672)


def test_every_compose_command_names_an_existing_management_command(services):
    known = get_commands()
    for name in APP_SERVICES:
        command = management_command(command_words(services[name]["command"]))
        assert command in known, f"{name} runs an unknown management command {command!r}"


def test_compose_runs_migrate_web_relay_and_consumer(services):
    assert command_words(services["migrate"]["command"])[2:] == ["migrate", "--noinput"]
    assert command_words(services["web"]["command"])[2:4] == ["runserver", "0.0.0.0:8000"]
    assert command_words(services["relay"]["command"])[2:] == ["relay"]
    assert command_words(services["consumer"]["command"])[2:] == ["consume_notifications"]


def test_every_procfile_command_names_an_existing_management_command():
    known = get_commands()
    entries = procfile_commands()
    assert set(entries) == {"web", "relay", "consumer"}
    for name, words in entries.items():
        command = management_command(words)
        assert command in known, f"Procfile's {name} runs an unknown management command {command!r}"


def test_web_and_rabbitmq_publish_their_ports(services):
    assert services["web"]["ports"] == ["8000:8000"]
    assert services["rabbitmq"]["ports"] == ["5672:5672", "15672:15672"]
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["postgres"]["image"] == "postgres:15"


def test_postgres_and_rabbitmq_have_healthchecks_and_keep_their_data(compose, services):
    assert "pg_isready" in " ".join(command_words(services["postgres"]["healthcheck"]["test"]))
    assert command_words(services["rabbitmq"]["healthcheck"]["test"])[-3:] == ["rabbitmq-diagnostics", "-q", "ping"]
    volume = services["postgres"]["volumes"][0].split(":")
    assert volume[0] in compose["volumes"]
    assert volume[1] == "/var/lib/postgresql/data"


def test_migrate_waits_for_healthy_postgres_and_apps_for_migrate_and_healthy_rabbitmq(services):
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in LONG_RUNNING_APP_SERVICES:
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "rabbitmq": {"condition": "service_healthy"},
        }
