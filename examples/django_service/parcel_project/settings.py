"""Settings of the parcel service: the outbox and the relay, and nothing of the messaging service.

`outbox` and `relay` are importable from the messaging service's repository (PYTHONPATH) or an
installed package. Every setting they read is set here; the values are the messaging service's
defaults.
"""

import os

import dj_database_url

SECRET_KEY = os.environ.get("SECRET_KEY", "parcel-example-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["django.contrib.contenttypes", "pgtrigger", "outbox", "relay", "parcels"]

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
# The outbox's backend writes appends with the next statement or the COMMIT; plain
# django.db.backends.postgresql works too, one INSERT per append.
DATABASES["default"]["ENGINE"] = "outbox.backends.postgresql"
DATABASES["default"]["OPTIONS"] = {"server_side_binding": False}

# --- broker and topology: this service's own exchange and queues ---------------------------------
BROKER_URL = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
BROKER_TRANSPORT_OPTIONS = {}
BROKER_NAMESPACE = os.environ.get("BROKER_NAMESPACE", "")
# One broker user per role is the production setup (docs/security.md); empty, every role uses
# BROKER_URL, as this example does.
RELAY_BROKER_URL = CONSUMER_BROKER_URL = REPLAY_BROKER_URL = ""
BROKER_HEARTBEAT_SECONDS = 30
BROKER_TOPOLOGY = "parcels.topology.build_topology"

# --- what the outbox and the relay read -----------------------------------------------------------
OUTBOX_EVENT_SOURCE = "/parcel-service"
EVENT_SCHEMA_BASE_URL = "http://127.0.0.1:8001/events/schemas"
OUTBOX_MAX_ATTEMPTS = 8
OUTBOX_RETRY_BASE_SECONDS = 1.0
OUTBOX_RETRY_MAX_SECONDS = 300.0
OUTBOX_MAX_EVENT_BYTES = 1024 * 1024
OUTBOX_PARTITION_DAYS = 1
OUTBOX_PARTITIONS_AHEAD_DAYS = 3
OUTBOX_PARTITION_CHECK_SECONDS = 600.0
OUTBOX_RETENTION_DAYS = 7
OUTBOX_FAILPOINTS = ""
RELAY_BATCH_SIZE = 500
RELAY_POLL_INTERVAL_SECONDS = 5.0
RELAY_CONFIRM_TIMEOUT_SECONDS = 10.0
RELAY_MAX_BACKOFF_SECONDS = 30.0
RELAY_LOCK_TIMEOUT_SECONDS = 30.0
RELAY_METRICS_PORT = 0
CONSUMER_PREFETCH = 500
CONSUMER_MAX_DELIVERIES = 5
CONSUMER_RETRY_MAX_DELAY_SECONDS = 5.0
CONSUMER_MAX_BACKOFF_SECONDS = 30.0
CONSUMER_PARTITIONS = 1
CONSUMER_REBALANCE_SECONDS = 1.0
WORKER_HEARTBEAT_SECONDS = 5.0
WORKER_STALL_SECONDS = 30.0
WORKER_FAILING_AFTER = 3
WORKER_METRICS_ADDRESS = "127.0.0.1"
PROMETHEUS_MULTIPROC_DIR = ""
METRICS_TOKEN = ""
READINESS_TIMEOUT_SECONDS = 2.0
# Traces (outbox/tracing.py): off here; OTEL_TRACES_EXPORTER=console prints them.
OTEL_EXPORTER_OTLP_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_TRACES_EXPORTER = os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if OTEL_EXPORTER_OTLP_ENDPOINT else "none")
OTEL_TRACES_FILE = os.environ.get("OTEL_TRACES_FILE", "")
OTEL_SERVICE_NAME = "parcel-service"
OTEL_TRACE_QUERIES = False
