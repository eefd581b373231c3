"""Fixtures that build real rows, real broker topologies and real worker processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from kombu.transport.filesystem import Transport as FilesystemTransport

from config.embedded import broker as embedded_broker
from config.embedded import filesystem_transport
from messaging.topology import build_topology
from outbox.broker import ROLE_URL_SETTINGS, broker_connection, declare_topology, delete_topology
from tests.helpers import env_with_broker, stop_processes
from tooling.faults.supervisor import current_database_url

ROOT = Path(__file__).resolve().parent.parent
_user_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 is slow on purpose; tests create many users and need no such protection."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db):
    """Create a user with a unique name: `make_user()` or `make_user("alice")`."""

    def make(username: str | None = None, **fields):
        username = username or f"user{next(_user_numbers)}-{uuid.uuid4().hex[:6]}"
        return get_user_model().objects.create_user(username=username, password="x-test-password", **fields)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture(autouse=True)
def in_process_code_uses_the_shared_broker_url(settings):
    """In this process every role connects with BROKER_URL (the test vhost's all-powerful user), as
    the fixtures that declare and delete topologies do; worker subprocesses get the role URLs."""
    for name in ROLE_URL_SETTINGS:
        setattr(settings, name, "")


@pytest.fixture
def broker_namespace(settings):
    """A private prefix for every exchange and queue of this test, deleted afterwards."""
    namespace = f"test-{uuid.uuid4().hex[:10]}."
    settings.BROKER_NAMESPACE = namespace
    yield namespace
    with broker_connection() as conn:
        delete_topology(conn.channel(), build_topology(namespace))


@pytest.fixture
def topology(broker_namespace):
    """The messaging topology under this test's namespace, declared on the real broker."""
    built = build_topology(broker_namespace)
    with broker_connection() as conn:
        declare_topology(conn.channel(), built)
    return built


@pytest.fixture
def broker_channel():
    """A channel on the real broker, closed after the test."""
    with broker_connection() as conn:
        yield conn.channel()


@pytest.fixture
def filesystem_broker(settings, tmp_path):
    """The configured broker is kombu's filesystem transport (the bare-machine default) in this
    test's own folder; yields its transport options."""
    settings.BROKER_URL = embedded_broker.URL
    settings.BROKER_TRANSPORT_OPTIONS = embedded_broker.transport_options(tmp_path / "broker")
    settings.BROKER_NAMESPACE = ""
    filesystem_transport.register()
    # The transport remembers declared bindings per process, whatever the folder: a binding
    # an earlier test declared would keep this test's folder from getting its own.
    FilesystemTransport.global_state.clear()
    yield settings.BROKER_TRANSPORT_OPTIONS
    FilesystemTransport.global_state.clear()


@pytest.fixture
def worker_env(topology, broker_namespace):
    """Environment for a worker subprocess: this test's database and broker namespace.

    The topology is declared first, as a deployment does: a relay with a user of its own declares
    only its exchange, and its first events must not find the consumer's queue missing.
    """
    env = dict(os.environ)
    env.update(
        DATABASE_URL=current_database_url(),
        BROKER_NAMESPACE=broker_namespace,
        RELAY_POLL_INTERVAL_SECONDS="1",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
    )
    return env


@pytest.fixture
def spawn_worker(worker_env, tmp_path):
    """Start `manage.py <command>` as a real process; every one still running is stopped at the end."""
    processes: list[tuple[subprocess.Popen, Path]] = []

    def spawn(*command: str, env: dict | None = None) -> subprocess.Popen:
        log_path = tmp_path / f"{command[0]}-{len(processes)}.log"
        log = log_path.open("wb")
        environment = {**worker_env, **(env or {})}
        if "BROKER_URL" in (env or {}):
            # Pointed at another broker (a proxy, a dead port): every role goes there.
            environment = env_with_broker(environment, env["BROKER_URL"])
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *command],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process.log_path = log_path
        processes.append((process, log_path))
        return process

    yield spawn
    stop_processes([process for process, _ in processes])


@pytest.fixture
def spans():
    """Tracing on in this process for one test, into the SDK's in-memory exporter; yields the exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from outbox import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)
