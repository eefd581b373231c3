"""The outbox's PostgreSQL backend for the embedded server: a connection starts the server if it is down.

The settings name this ENGINE when DATABASE_URL is unset, so importing them (and commands that never
connect, such as `manage.py check`) starts nothing. The server's socket folder and port are read
from its `postmaster.pid` at each new connection: pgserver picks another folder when the data
folder's path is too long for a Unix socket.
"""

from __future__ import annotations

import logging

import dj_database_url
from django.conf import settings

from config.embedded import postgres
from outbox.backends.postgresql import base

logger = logging.getLogger(__name__)


class DatabaseWrapper(base.DatabaseWrapper):
    """A connection to the embedded PostgreSQL of EMBEDDED_POSTGRES_DIR, started when it is down."""

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        server = dj_database_url.parse(ensure_embedded_postgres())
        params["host"] = server["HOST"]
        if server["PORT"]:
            params["port"] = server["PORT"]
        return params


def ensure_embedded_postgres() -> str:
    """The running embedded server's URL, starting it first when it is down (and saying so)."""
    data_dir = settings.EMBEDDED_POSTGRES_DIR
    url = postgres.running_url(data_dir)
    if url is None:
        if postgres.start(data_dir):
            # Nothing stops it when this process exits: scripts/run starts it before its processes
            # and stops it at the end, so this line only shows for a command run on its own.
            logger.warning(
                'embedded_postgres.started data=%s note="it keeps running after this process; '
                'stop it with: python manage.py embedded_postgres stop"',
                data_dir,
            )
        url = postgres.running_url(data_dir)
    if url is None:
        raise postgres.EmbeddedPostgresError(
            f"the embedded PostgreSQL in {data_dir} is not running after its start (its log: {data_dir / 'log'})"
        )
    return url
