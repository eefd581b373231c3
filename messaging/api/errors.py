"""How the API reports errors: JSON bodies, `{"detail": ...}` or `{field: [messages]}`, and their schemas."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"


def exception_handler(exc: Exception, context: dict):
    """DRF's handler, plus the services' Django ValidationError as a 400 keyed by field."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=serializers.as_serializer_error(exc))
    return drf_exception_handler(exc, context)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A JSON 404 under /api/ (unknown paths, malformed ids); Django's own page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A JSON 400 under /api/ (a request Django itself refuses); Django's own page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


# --- OpenAPI descriptions of the error responses ------------------------------------------

_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
# Field name (or `non_field_errors`) to its messages; `detail` alone for a body that is not JSON.
_FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
}

BAD_REQUEST = OpenApiResponse(_FIELD_ERRORS, description="Invalid input: the messages per field.")
UNAUTHENTICATED = OpenApiResponse(_DETAIL, description="No or an invalid token or session.")
FORBIDDEN = OpenApiResponse(_DETAIL, description="Not allowed (a missing CSRF token with a session).")
NOT_FOUND = OpenApiResponse(
    _DETAIL, description="No such item of yours: unknown, malformed or another user's id (never 403)."
)
INVALID_CURSOR = OpenApiResponse(_DETAIL, description="Invalid pagination cursor.")
THROTTLED = OpenApiResponse(
    _DETAIL, description="Too many messages sent: wait the seconds in the `Retry-After` header."
)
