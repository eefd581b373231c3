"""The published JSON Schemas of event data, one URL per event type and version."""

from __future__ import annotations

from django.http import Http404, HttpRequest, JsonResponse

from outbox.errors import UnknownEventType
from outbox.schemas import schema_of


def event_schema(request: HttpRequest, event_type: str, version: int) -> JsonResponse:
    """The `data` schema of `event_type` version `version`, as every such event's `dataschema` names it."""
    try:
        schema = schema_of(event_type, version)
    except UnknownEventType:
        raise Http404(f"no schema is published for {event_type} v{version}") from None
    response = JsonResponse(schema.schema, content_type="application/schema+json")
    # A published version never changes (a breaking change is a new version): caches may keep it.
    response["Cache-Control"] = "public, max-age=3600"
    return response
