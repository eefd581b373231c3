"""Settings for the messaging service, read once from the environment.

Every knob is an environment variable. With DATABASE_URL and BROKER_URL unset the service runs
on a bare machine: an embedded PostgreSQL and a serverless kombu transport, both in a local folder
(`config/embedded/`). Code reads `django.conf.settings`, never `os.environ`.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.checks.security import base as django_security_checks
from django.core.exceptions import ImproperlyConfigured

from config.embedded import broker as embedded_broker
from config.embedded import filesystem_transport as embedded_filesystem_transport
from config.embedded import postgres as embedded_postgres

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, not {raw!r}")


_KIND = {int: "an integer", float: "a number"}


def _env_number(name: str, default: float, cast: type, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {_KIND[cast]}, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    return _env_number(name, default, int, minimum)


def _env_port(name: str, default: int) -> int:
    """A TCP port to listen on; 0 turns the listener off."""
    value = _env_int(name, default, minimum=0)
    if value > 65535:
        raise ImproperlyConfigured(f"{name} must be a TCP port (1-65535, or 0 for off), not {value}")
    return value


def _env_float(name: str, default: float) -> float:
    # Durations: zero would mean busy loops or no waiting at all.
    return _env_number(name, default, float, 0.001)


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


_RATE_PERIODS = ("second", "minute", "hour", "day", "s", "m", "h", "d")


def _env_rate(name: str, default: str) -> str:
    """A rate such as `60/minute`, as Django REST framework's throttles read it."""
    raw = os.environ.get(name, default)
    count, _, period = (part.strip() for part in raw.partition("/"))
    if not (count.isdigit() and int(count) >= 1 and period in _RATE_PERIODS):
        raise ImproperlyConfigured(f"{name} must look like 60/minute (per second, minute, hour or day), not {raw!r}")
    return f"{int(count)}/{period}"


# --- Core -----------------------------------------------------------------------------------

_ENVIRONMENTS = ("development", "production")
ENVIRONMENT = os.environ.get("ENVIRONMENT", "development").strip().lower()
if ENVIRONMENT not in _ENVIRONMENTS:
    raise ImproperlyConfigured(f"ENVIRONMENT must be one of {list(_ENVIRONMENTS)}, not {ENVIRONMENT!r}")
PRODUCTION = ENVIRONMENT == "production"

# Development default: on. Production refuses it (tracebacks and settings would reach clients).
DEBUG = _env_bool("DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when ENVIRONMENT=production")

_DEVELOPMENT_SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
# More than `manage.py check --deploy` asks (security.W009: 50 characters, 5 distinct, which
# 'abcde' * 10 meets); a hex key has 16 distinct characters, a generated one about 30.
_SECRET_KEY_MIN_DISTINCT = 10

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Only ever used with DEBUG on, on a developer's machine.
    SECRET_KEY = _DEVELOPMENT_SECRET_KEY
if PRODUCTION and (
    SECRET_KEY == _DEVELOPMENT_SECRET_KEY
    # Django's own test: length, distinct characters, the "django-insecure-" prefix.
    or not django_security_checks._check_secret_key(SECRET_KEY)
    or len(set(SECRET_KEY)) < _SECRET_KEY_MIN_DISTINCT
):
    # Never echo the key itself: this message ends up in logs.
    raise ImproperlyConfigured(
        f"SECRET_KEY must be a random string of at least {django_security_checks.SECRET_KEY_MIN_LENGTH} "
        f"characters, {_SECRET_KEY_MIN_DISTINCT} of them distinct, when ENVIRONMENT=production "
        "(python -c 'from django.core.management.utils import get_random_secret_key as k; print(k())')"
    )

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# "*" lets any Host header through: password-reset links and absolute URLs built from it.
if PRODUCTION and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the service's hosts, not '*', when ENVIRONMENT=production")

# Error pages (DEBUG on) and reports mask the password inside DATABASE_URL, BROKER_URL and any
# other URL they show.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.PasswordMaskingReporterFilter"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pgtrigger",
    "outbox",
    "relay",
    "messaging",
    "tooling",
]

MIDDLEWARE = [
    # Outermost: every response, errors included, carries the id its log line names.
    "config.web_errors.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body (the CSRF check reads a form's): an oversized one is a JSON 413.
    "config.web_errors.OversizedBodyMiddleware",
    # Static files (admin, API docs) from the web process itself, with DEBUG off: no other server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost: it sees the view's exception before the others' process_exception.
    "config.web_errors.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------

# Where the embedded backends keep their data when DATABASE_URL or BROKER_URL is unset.
EMBEDDED_DATA_DIR = Path(os.environ.get("EMBEDDED_DATA_DIR") or BASE_DIR / "var").resolve()
EMBEDDED_POSTGRES_DIR = EMBEDDED_DATA_DIR / "pgdata"
EMBEDDED_BROKER_DIR = EMBEDDED_DATA_DIR / "broker"

# The embedded backends are for a developer's machine: production names its services.
for _name in ("DATABASE_URL", "BROKER_URL"):
    if PRODUCTION and not os.environ.get(_name):
        raise ImproperlyConfigured(f"{_name} must be set when ENVIRONMENT=production (unset means embedded)")

# Unset: the embedded PostgreSQL on a Unix socket in its data folder. Importing the settings
# starts nothing: its ENGINE (below) starts it on the first connection if it is down.
DATABASE_EMBEDDED = not os.environ.get("DATABASE_URL")
DATABASE_URL = os.environ.get("DATABASE_URL") or embedded_postgres.url_for(EMBEDDED_POSTGRES_DIR)
# Connections per process, bounded by psycopg's pool: a burst of requests waits for one of these
# rather than opening a session each, and past DATABASE_POOL_TIMEOUT_SECONDS gets a 503 (the
# web's DatabaseUnavailableMiddleware). docs/web-capacity.md relates it to max_connections.
# 0 (the default outside gunicorn, whose config sets its threads): no pool, one persistent
# connection per thread, as the workers and the multi-threaded tools (chaos soak, benchmarks)
# expect: a pool would take back no connection of a thread that ends without closing it.
DATABASE_POOL_MAX_SIZE = _env_int("DATABASE_POOL_MAX_SIZE", 0, minimum=0)
DATABASE_POOL_TIMEOUT_SECONDS = _env_float("DATABASE_POOL_TIMEOUT_SECONDS", 5.0)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        # Django's pool requires connections closed (given back) at the end of each request.
        conn_max_age=0 if DATABASE_POOL_MAX_SIZE else 60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (the outbox relies on its triggers)")
# Django's PostgreSQL backend, sending outbox appends with the next statement or the COMMIT.
DATABASES["default"]["ENGINE"] = "outbox.backends.postgresql"
if DATABASE_EMBEDDED:
    # The same backend, starting the embedded server when a connection finds it down.
    DATABASES["default"]["ENGINE"] = "config.embedded.database"
# pgtrigger.ignore() does not work with server-side binding, and the relay's claim sends two
# statements as one query (outbox.services.claim_batch): keep Django's client-side default.
DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = False
# May this connection keep prepared statements? Only the outbox's appends use them (Django's
# client-side binding never prepares); false behind a pooler that does not carry them from one
# server connection to the next (PgBouncer in transaction mode, unless max_prepared_statements).
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 5 if _env_bool("DATABASE_PREPARED_STATEMENTS", True) else None
if DATABASE_POOL_MAX_SIZE:
    # One connection kept open: a worker process holds one for good, a web process's first
    # request after a quiet spell does not wait for a new session.
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": DATABASE_POOL_TIMEOUT_SECONDS,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies written by collectstatic; no manifest, so pages render before (and
    # without) a collectstatic run, as in tests and local runs.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- HTTPS (on in production; `manage.py check --deploy` passes with these) -----------------

# Off only where TLS does not reach Django at all and nothing redirects (the compose stack on
# localhost), or where the proxy in front already redirects plain HTTP.
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
# Behind a proxy that terminates TLS, Django sees plain HTTP; trust the proxy's header only when
# the proxy sets it and strips any the client sent.
if _env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and Prometheus talk plain HTTP to the process from inside the network: never redirect them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Cache ----------------------------------------------------------------------------------

# Shared by every web process without another service: a table in PostgreSQL, created by the
# migration messaging 0002 (keep the name in step). The send limit counts elsewhere, in a table
# of its own (messaging.services.count_message_send).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "shared_cache",
        # Past this many rows a write culls a third of them (every write counts the table).
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
}

# --- Broker and the event pipeline ----------------------------------------------------------

# Unset: kombu's filesystem transport in EMBEDDED_BROKER_DIR, no server needed (config/embedded/broker.py
# says why that transport). Any kombu URL works; the relay publishes with confirms on AMQP.
BROKER_URL = os.environ.get("BROKER_URL") or embedded_broker.URL
BROKER_TRANSPORT_OPTIONS = {}
if BROKER_URL.partition("://")[0] == embedded_broker.SCHEME:
    BROKER_TRANSPORT_OPTIONS = embedded_broker.transport_options(EMBEDDED_BROKER_DIR)
    # Files named in publish order: kombu's own names shuffle what one millisecond publishes.
    embedded_filesystem_transport.register()
# One broker user per role, least privilege (docs/security.md, "Broker users and permissions").
# Empty: the role connects with BROKER_URL and declares the whole topology, as one user may.
RELAY_BROKER_URL = os.environ.get("RELAY_BROKER_URL", "")
CONSUMER_BROKER_URL = os.environ.get("CONSUMER_BROKER_URL", "")
REPLAY_BROKER_URL = os.environ.get("REPLAY_BROKER_URL", "")
# Prepended to every exchange and queue name; tests use it to get a private topology.
BROKER_NAMESPACE = os.environ.get("BROKER_NAMESPACE", "")
# AMQP heartbeat interval asked of the broker (it may lower it): a connection silent for twice
# this long is presumed dead by both sides.
BROKER_HEARTBEAT_SECONDS = _env_int("BROKER_HEARTBEAT_SECONDS", 30)
# Dotted path to the callable returning the broker topology the relay and consumers declare.
BROKER_TOPOLOGY = os.environ.get("BROKER_TOPOLOGY", "messaging.topology.build_topology")

# CloudEvents `source` attribute of every event this service publishes.
OUTBOX_EVENT_SOURCE = os.environ.get("OUTBOX_EVENT_SOURCE", "/messaging-service")
# Where the event schemas are published (`<base>/<type>/v<version>.json`), named by every event's
# CloudEvents `dataschema`; the default is the local web address. Consumers refuse an event whose
# `dataschema` is not under it, so publisher and consumers must agree on it.
EVENT_SCHEMA_BASE_URL = os.environ.get("EVENT_SCHEMA_BASE_URL", "http://127.0.0.1:8000/api/events/schemas").rstrip("/")

RELAY_BATCH_SIZE = _env_int("RELAY_BATCH_SIZE", 500)
# Fallback poll when no NOTIFY arrives (a lost notification, a relay started late).
RELAY_POLL_INTERVAL_SECONDS = _env_float("RELAY_POLL_INTERVAL_SECONDS", 5.0)
RELAY_CONFIRM_TIMEOUT_SECONDS = _env_float("RELAY_CONFIRM_TIMEOUT_SECONDS", 10.0)
RELAY_MAX_BACKOFF_SECONDS = _env_float("RELAY_MAX_BACKOFF_SECONDS", 30.0)
# A relay idle inside its batch transaction longer than this (hung, stopped) has its session
# ended by PostgreSQL, which releases the batch to the other relays.
RELAY_LOCK_TIMEOUT_SECONDS = _env_float("RELAY_LOCK_TIMEOUT_SECONDS", 30.0)
if RELAY_LOCK_TIMEOUT_SECONDS <= RELAY_CONFIRM_TIMEOUT_SECONDS:
    raise ImproperlyConfigured("RELAY_LOCK_TIMEOUT_SECONDS must exceed RELAY_CONFIRM_TIMEOUT_SECONDS")

# A publish that fails (unroutable, refused, too large) is retried with exponential backoff and
# jitter, then parked as dead after this many attempts; it never holds up other aggregates.
OUTBOX_MAX_ATTEMPTS = _env_int("OUTBOX_MAX_ATTEMPTS", 8)
OUTBOX_RETRY_BASE_SECONDS = _env_float("OUTBOX_RETRY_BASE_SECONDS", 1.0)
OUTBOX_RETRY_MAX_SECONDS = _env_float("OUTBOX_RETRY_MAX_SECONDS", 300.0)
# Larger events are refused before they reach the broker (RabbitMQ's own limit is far higher).
OUTBOX_MAX_EVENT_BYTES = _env_int("OUTBOX_MAX_EVENT_BYTES", 1024 * 1024)
# The event and inbox tables are partitioned by time (docs/decisions/0005-time-partitions.md):
# partitions of this many days, created this many days ahead by the relay, which checks every
# OUTBOX_PARTITION_CHECK_SECONDS; `outbox_prune` drops partitions older than the retention window.
OUTBOX_PARTITION_DAYS = _env_int("OUTBOX_PARTITION_DAYS", 1)
OUTBOX_PARTITIONS_AHEAD_DAYS = _env_int("OUTBOX_PARTITIONS_AHEAD_DAYS", 3)
OUTBOX_PARTITION_CHECK_SECONDS = _env_float("OUTBOX_PARTITION_CHECK_SECONDS", 600.0)
OUTBOX_RETENTION_DAYS = _env_int("OUTBOX_RETENTION_DAYS", 7)

# Workers write a heartbeat this often; one silent for WORKER_STALL_SECONDS is reported stalled.
WORKER_HEARTBEAT_SECONDS = _env_float("WORKER_HEARTBEAT_SECONDS", 5.0)
WORKER_STALL_SECONDS = _env_float("WORKER_STALL_SECONDS", 30.0)
# A live worker with this many outages or unexpected errors in a row is failing: /readyz says so.
WORKER_FAILING_AFTER = _env_int("WORKER_FAILING_AFTER", 3)

# Fault injection for the fault suite only: "name=probability,..." (see outbox/failpoints.py).
OUTBOX_FAILPOINTS = os.environ.get("OUTBOX_FAILPOINTS", "")

# Unacked deliveries per consumer; a transaction settles half of them while the broker sends the
# other half (docs/decisions/consumer-pipelined-batches.md).
CONSUMER_PREFETCH = _env_int("CONSUMER_PREFETCH", 500)
# Above 1, the consumer's queue is split into this many partition queues behind a consistent-hash
# exchange, shared by the consumer processes (docs/decisions/partitioned-consumption.md).
CONSUMER_PARTITIONS = _env_int("CONSUMER_PARTITIONS", 1)
# How often a consumer process recounts the live processes and takes or gives up partitions.
CONSUMER_REBALANCE_SECONDS = _env_float("CONSUMER_REBALANCE_SECONDS", 1.0)
# A delivery whose handler keeps failing is dead-lettered on this delivery.
CONSUMER_MAX_DELIVERIES = _env_int("CONSUMER_MAX_DELIVERIES", 5)
CONSUMER_RETRY_MAX_DELAY_SECONDS = _env_float("CONSUMER_RETRY_MAX_DELAY_SECONDS", 5.0)
CONSUMER_MAX_BACKOFF_SECONDS = _env_float("CONSUMER_MAX_BACKOFF_SECONDS", 30.0)

# Notifications show the start of a message, cut with an ellipsis past this many characters.
NOTIFICATION_PREVIEW_LENGTH = _env_int("NOTIFICATION_PREVIEW_LENGTH", 100, minimum=10)

# --- Metrics and health ------------------------------------------------------------------------

# Under gunicorn with several workers: the directory where every worker writes its metrics, for
# /metrics to add them up (prometheus_client reads the same variable; config/gunicorn.py empties
# it at start). Empty: one process, metrics from memory.
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
# When set, /metrics answers only `Authorization: Bearer <token>`. Metrics hold counts and event
# type names, never content or ids, but traffic volumes are nobody else's business: production
# requires one, as the web port is the public one.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
_METRICS_TOKEN_MIN_LENGTH = 16
if PRODUCTION and len(METRICS_TOKEN) < _METRICS_TOKEN_MIN_LENGTH:
    raise ImproperlyConfigured(
        f"METRICS_TOKEN must be set, at least {_METRICS_TOKEN_MIN_LENGTH} characters, when "
        "ENVIRONMENT=production (Prometheus sends it as a bearer token)"
    )
# The relay and the consumer serve their own /metrics over HTTP on these ports; 0 = off.
RELAY_METRICS_PORT = _env_port("RELAY_METRICS_PORT", 0)
CONSUMER_METRICS_PORT = _env_port("CONSUMER_METRICS_PORT", 0)
# Loopback by default; containers set 0.0.0.0 so that Prometheus reaches them on their network.
WORKER_METRICS_ADDRESS = os.environ.get("WORKER_METRICS_ADDRESS", "127.0.0.1")
# How long /readyz waits for the database and for the broker, each.
READINESS_TIMEOUT_SECONDS = _env_float("READINESS_TIMEOUT_SECONDS", 2.0)

# --- Traces (OpenTelemetry; outbox/tracing.py, docs/operations.md "Traces") -----------------

# The standard variables. An OTLP endpoint alone turns tracing on with the `otlp` exporter;
# OTEL_TRACES_EXPORTER picks another: console, jsonl (OTEL_TRACES_FILE), drop, none. Off by default.
OTEL_EXPORTER_OTLP_ENDPOINT = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
OTEL_TRACES_EXPORTER = os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if OTEL_EXPORTER_OTLP_ENDPOINT else "none")
_TRACE_EXPORTERS = ("otlp", "console", "jsonl", "drop", "none")
if OTEL_TRACES_EXPORTER not in _TRACE_EXPORTERS:
    raise ImproperlyConfigured(f"OTEL_TRACES_EXPORTER must be one of {', '.join(_TRACE_EXPORTERS)}")
if OTEL_TRACES_EXPORTER == "otlp" and not OTEL_EXPORTER_OTLP_ENDPOINT:
    raise ImproperlyConfigured("OTEL_TRACES_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT")
# The file the jsonl exporter appends spans to.
OTEL_TRACES_FILE = os.environ.get("OTEL_TRACES_FILE", "")
if OTEL_TRACES_EXPORTER == "jsonl" and not OTEL_TRACES_FILE:
    raise ImproperlyConfigured("OTEL_TRACES_EXPORTER=jsonl needs OTEL_TRACES_FILE")
# A span per SQL statement (psycopg instrumentation): the detail of each transaction, at a cost
# on the write path (docs/performance.md "Tracing overhead"); off, the transaction is one span.
OTEL_TRACE_QUERIES = _env_bool("OTEL_TRACE_QUERIES", False)
# The service name on every span of this process (web, relay, consumer in the compose stack).
OTEL_SERVICE_NAME = os.environ.get("OTEL_SERVICE_NAME", "messaging")

# --- HTTP API -------------------------------------------------------------------------------

# Longest message content accepted, in characters.
MESSAGE_MAX_LENGTH = _env_int("MESSAGE_MAX_LENGTH", 10_000)
# Messages one user may send through the API: "N/second|minute|hour|day".
API_MESSAGE_CREATE_RATE = _env_rate("API_MESSAGE_CREATE_RATE", "60/minute")
# Items per page of the API's lists.
API_PAGE_SIZE = _env_int("API_PAGE_SIZE", 50)

REST_FRAMEWORK = {
    # Token first: its `WWW-Authenticate` header is what turns an anonymous request into a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["messaging.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "messaging.api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Messaging API",
    "DESCRIPTION": (
        "Send messages between users, read them, and read the notifications built from their events. "
        "Authenticate with `Authorization: Token <key>` (or a session in the browser)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files: the docs page must not depend on a CDN being reachable.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"NotificationTypeEnum": "messaging.models.Notification.NotificationType"},
}

# --- Logging: one key=value line per event worth knowing, never message content -------------

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "keyvalue": {
            "format": "ts=%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d %(message)s",
        },
    },
    "filters": {"request_errors": {"()": "config.request_log.RequestLogFilter"}},
    # On the handler, not a logger: django.security.* records reach it by propagation, which
    # passes by their parents' filters.
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "keyvalue", "filters": ["request_errors"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers off (its console with DEBUG, mail to ADMINS): each record goes
        # to the root's handler once, and mail would carry the request's body.
        # Each response's record (django.request, django.security) is one line with the request
        # id, never the body or the error's text: config.request_log.RequestLogFilter.
        "django": {"handlers": [], "level": "INFO"},
        # py-amqp and kombu log every frame at DEBUG; their warnings are enough.
        "amqp": {"level": "WARNING"},
        "kombu": {"level": "WARNING"},
        # pgserver logs every step of starting the embedded PostgreSQL at INFO.
        "pgserver": {"level": "WARNING"},
        # With DEBUG on, Django logs every SQL statement with its parameters: message content.
        "django.db.backends": {"level": "INFO"},
        # Every request has its access line (runserver's django.server, gunicorn's access log);
        # this logger's own line for a 4xx would say it twice. 5xx keep theirs, traceback and all.
        "django.request": {"level": "ERROR"},
    },
}
