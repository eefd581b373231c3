"""The event contract over HTTP: the AsyncAPI document, readable without authentication."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from messaging.contract import asyncapi_document, asyncapi_yaml


def asyncapi_json(request: HttpRequest) -> JsonResponse:
    """The AsyncAPI 3.0 document of the events, as JSON."""
    return JsonResponse(asyncapi_document())


def asyncapi_yaml_document(request: HttpRequest) -> HttpResponse:
    """The AsyncAPI 3.0 document of the events, as YAML (what docs/asyncapi.yaml holds)."""
    return HttpResponse(asyncapi_yaml(), content_type="application/yaml; charset=utf-8")
