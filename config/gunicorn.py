"""gunicorn settings for the web process: `gunicorn -c config/gunicorn.py config.wsgi:application`.

Several worker processes share one /metrics through prometheus_client's multiprocess mode: each
worker writes its counters to files in PROMETHEUS_MULTIPROC_DIR, and the worker that answers a
scrape sums them. This file is gunicorn's, not Django's: it runs in the master before any
Django code, so it reads the environment itself (the one variable prometheus_client reads too).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

bind = "0.0.0.0:8000"
# One process per core of a small container (`--workers N` on the command line overrides it);
# threads cover requests waiting on PostgreSQL.
workers = 2
worker_class = "gthread"
threads = 4
# Database sessions per worker process at most (config/settings.py), one per thread unless set.
os.environ.setdefault("DATABASE_POOL_MAX_SIZE", str(threads))
# The slowest request is a readiness probe with its own timeouts, or a large page.
timeout = 30
graceful_timeout = 20
# Nothing manages the server through gunicornc; no socket in the home directory.
control_socket_disable = True
accesslog = "-"
# The access log line carries the path and status but no query string (cursors, filters) or body.
access_log_format = "method=%(m)s path=%(U)s status=%(s)s bytes=%(B)s duration_us=%(D)s"

# Without a directory every worker would count on its own and a scrape would show one worker's
# share: give this server one, inherited by the workers (set here, before any of them starts).
_OWN_METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIRECTORY:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tempfile.gettempdir()) / f"web-metrics-{os.getpid()}")
# Present before anything imports the app (`--preload`, `--check-config`); emptied at start below.
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def on_starting(server) -> None:
    """Start from an empty metrics directory: files of a previous run would be summed in."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True)


def child_exit(server, worker) -> None:
    """Drop a dead worker's live gauges; its counters stay in the sums, as counters must."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _OWN_METRICS_DIRECTORY:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
