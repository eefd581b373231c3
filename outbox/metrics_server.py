"""Where metrics are served: the web process's /metrics, and each worker's own HTTP listener.

The web process runs under gunicorn with several worker processes; each keeps its counters in
PROMETHEUS_MULTIPROC_DIR, and whichever worker answers a scrape adds them all up. The backlog
gauges are read from the database by that one worker per scrape, so they appear once. The relay
and the consumer are one process each and serve their in-memory registry on their own port.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.management.base import CommandError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from outbox.metrics import BacklogCollector

logger = logging.getLogger(__name__)


class MetricsServerUnavailable(CommandError):
    """A worker's metrics listener could not be started (port taken, address not local).

    A CommandError because the worker commands start the listener: they stop with this one line.
    """


class _Registries:
    """Several registries exposed as one."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self._registries = registries

    def collect(self) -> Iterable[Metric]:
        for registry in self._registries:
            yield from registry.collect()


def metrics_readable_with(authorization: str | None) -> bool:
    """Whether a request with this Authorization header may read /metrics (METRICS_TOKEN)."""
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, credentials = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


def worker_metrics_locations() -> dict[str, str]:
    """Where the relay and the consumer serve their metrics, by worker: a URL, or why there is none."""
    address = settings.WORKER_METRICS_ADDRESS
    locations = {}
    for worker, variable in (("relay", "RELAY_METRICS_PORT"), ("consumer", "CONSUMER_METRICS_PORT")):
        port = getattr(settings, variable)
        if not port:
            locations[worker] = f"off ({variable}=0)"
        elif address in ("0.0.0.0", "::", ""):  # noqa: S104 - names the wildcard, binds nothing
            locations[worker] = f"port {port} of every {worker} host (/metrics)"
        else:
            locations[worker] = f"http://{address}:{port}/metrics"
    return locations


def render_web_metrics() -> tuple[bytes, str]:
    """The web process's metrics in the text exposition format, and their content type.

    Comment lines first say where the workers' own metrics are: the relay's and the consumer's
    counters (events published, consumed) never reach this process.
    """
    backlog = CollectorRegistry()
    backlog.register(BacklogCollector())
    if settings.PROMETHEUS_MULTIPROC_DIR:
        processes = CollectorRegistry()
        MultiProcessCollector(processes, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        processes = REGISTRY
    note = "# The relay's and the consumer's metrics (outbox_events_published_total and others) are not here:\n"
    note += "".join(f"# {worker}: {where}\n" for worker, where in worker_metrics_locations().items())
    return note.encode() + generate_latest(_Registries(processes, backlog)), CONTENT_TYPE_LATEST


@contextlib.contextmanager
def serving_worker_metrics(port: int) -> Iterator[None]:
    """Serve this process's metrics over HTTP on `port` (0: not at all) for the block's duration."""
    if not port:
        yield
        return
    address = settings.WORKER_METRICS_ADDRESS
    try:
        server, thread = start_http_server(port, addr=address)
    except OSError as exc:
        raise MetricsServerUnavailable(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}") from exc
    logger.info("metrics.serving address=%s port=%d", address, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
