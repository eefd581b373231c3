"""The outbox and the relay in a Django service that is not the messaging service.

examples/django_service installs only `outbox` and `relay` (no `messaging`) with an event type,
a topology and an inbox consumer of its own: its parcels go through the outbox, the relay and
the consumer, and nothing of the messaging service is imported on the way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dj_database_url
import psycopg
import pytest
from psycopg import sql

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_service"


@pytest.fixture
def parcel_database_url():
    """A database of the parcel service's own, next to the test database, dropped afterwards."""
    config = dj_database_url.parse(os.environ["DATABASE_URL"])
    name = f"{config['NAME']}_parcels"
    params = {"host": config["HOST"] or None, "port": config["PORT"] or None, "user": config["USER"] or None}
    if config["PASSWORD"]:
        params["password"] = config["PASSWORD"]
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    password = f":{config['PASSWORD']}" if config["PASSWORD"] else ""
    yield f"postgres://{config['USER']}{password}@{config['HOST']}:{config['PORT'] or 5432}/{name}"
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def manage(*command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *command], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_service_with_only_outbox_and_relay_sends_relays_and_consumes_its_own_events(parcel_database_url):
    env = {
        "PATH": os.environ["PATH"],
        # outbox and relay come from this repository, as an installed package would provide them.
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": parcel_database_url,
        "BROKER_URL": os.environ["BROKER_URL"],
        "BROKER_NAMESPACE": f"test-{uuid.uuid4().hex[:10]}.",
    }

    migrated = manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    roundtrip = manage("parcel_roundtrip", "--parcels=3", "--delete-topology", env=env)

    assert roundtrip.returncode == 0, roundtrip.stdout + roundtrip.stderr
    assert "events=3 published=3 labels=3 service_modules_loaded=none" in roundtrip.stdout
    assert "messaging" not in migrated.stdout
