"""Which database and broker this process uses, in one line without secrets."""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from outbox.broker import describe_broker


def describe_database(alias: str = DEFAULT_DB_ALIAS) -> str:
    """The database's URL with its password masked, and whether it is the embedded one."""
    params = connections[alias].settings_dict
    password = ":**" if params.get("PASSWORD") else ""
    port = f":{params['PORT']}" if params.get("PORT") else ""
    url = f"postgres://{params['USER']}{password}@{params['HOST']}{port}/{params['NAME']}"
    return f"{url} (embedded PostgreSQL, data {settings.EMBEDDED_POSTGRES_DIR})" if settings.DATABASE_EMBEDDED else url


def describe_backends() -> str:
    """`database=... broker=...` for a log line or the console."""
    return f"database={describe_database()} broker={describe_broker()}"
