"""Test helpers for metrics: values from this process's registry, and parsed scrapes of an endpoint."""

from __future__ import annotations

import socket
import urllib.request

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset], float]


def value(name: str, **labels: str) -> float:
    """A sample of this process's default registry; 0 when the series does not exist yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def parse(text: str) -> Samples:
    """Every sample of a text exposition, keyed by (sample name, its labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def scrape(port: int, *, path: str = "/metrics", headers: dict | None = None) -> Samples:
    """Fetch and parse a metrics endpoint on this machine."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a fixed local http URL
        return parse(response.read().decode())


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
