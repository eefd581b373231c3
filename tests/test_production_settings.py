"""ENVIRONMENT=production: refuses unsafe settings at start-up, and `check --deploy` passes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management.utils import get_random_secret_key

from tests.conftest import ROOT

# Variables these tests decide; whatever the developer's shell sets for them is left out.
DECIDED = (
    "ENVIRONMENT",
    "DEBUG",
    "SECRET_KEY",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "API_MESSAGE_CREATE_RATE",
    "METRICS_TOKEN",
    "ALLOWED_HOSTS",
)
GOOD_KEY = get_random_secret_key()
GOOD_METRICS_TOKEN = "a-metrics-token-of-some-length"


def run(*command: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in DECIDED}
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def load_settings(**env: str) -> subprocess.CompletedProcess:
    return run("-c", "from django.conf import settings; print(settings.DEBUG)", **env)


def test_check_deploy_passes_with_production_settings():
    result = run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENVIRONMENT="production",
        SECRET_KEY=GOOD_KEY,
        METRICS_TOKEN=GOOD_METRICS_TOKEN,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_turns_debug_off_by_default():
    result = load_settings(ENVIRONMENT="production", SECRET_KEY=GOOD_KEY, METRICS_TOKEN=GOOD_METRICS_TOKEN)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DEBUG": "true", "SECRET_KEY": GOOD_KEY}, "DEBUG must be off"),
        ({}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "insecure-development-key-do-not-use-in-production"}, "SECRET_KEY must be a random string"),
        ({"SECRET_KEY": "short-but-secret"}, "SECRET_KEY must be a random string"),
        ({"SECRET_KEY": "ab" * 40}, "SECRET_KEY must be a random string"),
        ({"SECRET_KEY": "django-insecure-" + GOOD_KEY}, "SECRET_KEY must be a random string"),
        # Five distinct characters pass Django's own check (security.W009).
        ({"SECRET_KEY": "abcde" * 10}, "SECRET_KEY must be a random string"),
    ],
    ids=[
        "debug-on",
        "no-key",
        "development-key",
        "short-key",
        "few-distinct-characters",
        "django-insecure-key",
        "five-distinct-characters",
    ],
)
def test_production_refuses_to_start_with_debug_on_or_a_weak_secret_key(env, reason):
    result = load_settings(ENVIRONMENT="production", **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert reason in result.stderr
    if env.get("SECRET_KEY"):
        assert env["SECRET_KEY"] not in result.stderr


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT must be one of"),
        ({"API_MESSAGE_CREATE_RATE": "lots"}, "API_MESSAGE_CREATE_RATE must look like 60/minute"),
        ({"API_MESSAGE_CREATE_RATE": "0/minute"}, "API_MESSAGE_CREATE_RATE must look like 60/minute"),
        ({"API_PAGE_SIZE": "0"}, "API_PAGE_SIZE must be at least 1"),
        ({"MESSAGE_MAX_LENGTH": "many"}, "MESSAGE_MAX_LENGTH must be an integer"),
        ({"DATABASE_PREPARED_STATEMENTS": "maybe"}, "DATABASE_PREPARED_STATEMENTS"),
    ],
)
def test_bad_values_stop_start_up(env, reason):
    result = load_settings(**env)

    assert result.returncode != 0
    assert reason in result.stderr


@pytest.mark.parametrize(("value", "threshold"), [(None, "5"), ("true", "5"), ("false", "None")])
def test_database_prepared_statements_sets_what_the_outbox_reads(value, threshold):
    # The outbox prepares its INSERT only where psycopg's prepare_threshold is set (write_behind).
    env = {} if value is None else {"DATABASE_PREPARED_STATEMENTS": value}
    code = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"

    result = run("-c", code, **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == threshold


def test_development_still_starts_without_a_secret_key():
    result = load_settings()

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize("unset", ["DATABASE_URL", "BROKER_URL"])
def test_production_refuses_the_embedded_backends(unset, monkeypatch):
    # Unset means the embedded PostgreSQL or the filesystem broker: never what production wants.
    monkeypatch.delenv(unset, raising=False)
    result = load_settings(ENVIRONMENT="production", SECRET_KEY=GOOD_KEY, DEBUG="false")
    assert result.returncode != 0
    assert f"{unset} must be set when ENVIRONMENT=production" in result.stderr


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must name the service's hosts, not '*'"),
        ({"ALLOWED_HOSTS": "api.example.com, *"}, "ALLOWED_HOSTS must name the service's hosts, not '*'"),
        ({"METRICS_TOKEN": ""}, "METRICS_TOKEN must be set"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN must be set"),
    ],
    ids=["any-host", "any-host-among-others", "no-metrics-token", "short-metrics-token"],
)
def test_production_refuses_any_host_and_an_open_metrics_endpoint(env, reason):
    result = load_settings(
        **{"ENVIRONMENT": "production", "SECRET_KEY": GOOD_KEY, "METRICS_TOKEN": GOOD_METRICS_TOKEN, **env}
    )

    assert result.returncode != 0
    assert reason in result.stderr
    if env.get("METRICS_TOKEN"):
        assert env["METRICS_TOKEN"] not in result.stderr


def test_development_serves_metrics_without_a_token_and_any_host():
    result = load_settings(ALLOWED_HOSTS="*")

    assert result.returncode == 0, result.stderr


DATABASE_PASSWORD = "db-password-4471"
BROKER_PASSWORD = "broker-password-9921"


@pytest.mark.django_db
def test_the_debug_error_page_masks_the_passwords_in_urls(settings, client, monkeypatch):
    from messaging import selectors

    settings.DEBUG = True
    settings.DATABASE_URL = f"postgres://app:{DATABASE_PASSWORD}@db:5432/messaging"
    settings.BROKER_URL = f"amqp://relay:{BROKER_PASSWORD}@rabbit-1//;amqp://relay:{BROKER_PASSWORD}@rabbit-2//"
    settings.BROKER_CONSUMER_URL = f"amqp://consumer:{BROKER_PASSWORD}@rabbit//"
    monkeypatch.setattr(selectors, "messages_of", lambda *args, **kwargs: 1 / 0)
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("debugger"))
    client.raise_request_exception = False

    page = client.get("/api/messages/").content.decode()

    assert "ZeroDivisionError" in page  # the debug page itself, settings and all
    assert "DATABASE_URL" in page
    assert "BROKER_CONSUMER_URL" in page
    assert DATABASE_PASSWORD not in page
    assert BROKER_PASSWORD not in page
    assert "postgres://app:********@db:5432/messaging" in page
