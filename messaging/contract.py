"""The messaging service's event contract: its AsyncAPI document, as published and as committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from outbox.asyncapi import ContractInfo, build_asyncapi_document, render_yaml
from outbox.broker import load_topology

# Raised in its minor part for an additive change (a new event type or version), in its major
# part never: a breaking change is a new version of an event, published next to the old one.
CONTRACT_VERSION = "1.1.0"
COMMITTED_DOCUMENT = Path(settings.BASE_DIR) / "docs" / "asyncapi.yaml"

DESCRIPTION = """\
The events the messaging service publishes through its transactional outbox. Each is a CloudEvents 1.0
JSON document (structured mode) on the `messaging.events` topic exchange, its routing key the event type.
Delivery is at least once: deduplicate on `id`, order one subject's events by `sequence`. Every event
names its `data` schema in `dataschema`. The consumer guide (docs/consumers.md) says how to bind a queue,
replay, and ask for a schema change.
"""


def asyncapi_document(namespace: str | None = None) -> dict[str, Any]:
    """The AsyncAPI document of the configured topology (its names under `namespace`) and schemas."""
    info = ContractInfo(
        title="Messaging service events",
        version=CONTRACT_VERSION,
        description=" ".join(DESCRIPTION.split()),
        source=settings.OUTBOX_EVENT_SOURCE,
    )
    return build_asyncapi_document(load_topology(namespace), info, schema_base_url=settings.EVENT_SCHEMA_BASE_URL)


def asyncapi_yaml(namespace: str | None = None) -> str:
    """`asyncapi_document` as YAML, as `manage.py asyncapi` writes it to docs/asyncapi.yaml."""
    return render_yaml(asyncapi_document(namespace))
