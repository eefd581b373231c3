"""How the web reports what went wrong: a request id on every response, a 503 when the database
refuses, and one log line per 4xx/5xx response without the request's body or the error's text.

- `RequestIdMiddleware` (outermost) takes a well-formed `X-Request-ID` from the client or the
  proxy, or makes one, and sends it back on every response.
- `OversizedBodyMiddleware` refuses an /api/ body past DATA_UPLOAD_MAX_MEMORY_SIZE from its
  Content-Length, as a JSON 413, before anything reads it.
- `DatabaseUnavailableMiddleware` turns a view's database outage (refused connection, too many
  clients, the pool's timeout, a lost session) into a JSON 503 with `Retry-After`;
  `server_error` (handler500) does the same for an outage outside a view.
- `config.request_log.RequestLogFilter` writes the one log line per 4xx/5xx response.
"""

from __future__ import annotations

import math
import re
import sys
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from config.request_log import request_id_of
from messaging.api.errors import API_PREFIX
from messaging.api.parsers import TOO_LARGE

REQUEST_ID_HEADER = "X-Request-ID"
# What a client's id may look like to be kept (a proxy's UUID, a trace id); anything else is
# replaced, so no header value reaches a log line unchecked.
_WELL_FORMED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
DATABASE_UNAVAILABLE = "The database is unavailable; try again later."
SERVER_ERROR = "Server error."


class RequestIdMiddleware:
    """Give every request an id, the client's when well formed, and send it back as X-Request-ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = offered if _WELL_FORMED_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


def is_database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc` is the database refusing or losing the connection, not a bad statement."""
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable(request: HttpRequest, exc: BaseException) -> JsonResponse:
    """A 503 telling the client to come back once the pool has had time to free a connection."""
    request.error_type = type(exc.__cause__ or exc).__name__
    response = JsonResponse({"detail": DATABASE_UNAVAILABLE, "request_id": request_id_of(request)}, status=503)
    response["Retry-After"] = str(max(1, math.ceil(settings.DATABASE_POOL_TIMEOUT_SECONDS)))
    return response


class DatabaseUnavailableMiddleware:
    """A view's database outage is a 503 with Retry-After, in DEBUG too; other errors go on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_database_unavailable(exception):
            return database_unavailable(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a 503 for a database outage, a JSON 500 under /api/, Django's page elsewhere."""
    exc = sys.exc_info()[1]  # Django calls handler500 while handling the exception
    if is_database_unavailable(exc):
        return database_unavailable(request, exc)
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": SERVER_ERROR, "request_id": request_id_of(request)}, status=500)
    return defaults.server_error(request)


class OversizedBodyMiddleware:
    """A request to /api/ declaring a body past DATA_UPLOAD_MAX_MEMORY_SIZE is a JSON 413, unread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and request.path.startswith(API_PREFIX):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0  # Django reads a malformed length as no body too
            if length > limit:
                return JsonResponse({"detail": TOO_LARGE.format(limit=limit)}, status=413)
        return self.get_response(request)
