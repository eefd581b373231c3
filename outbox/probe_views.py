"""Operators' HTTP endpoints: /healthz (the process answers), /readyz (it can work), /metrics."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from outbox.health import readiness
from outbox.metrics_server import metrics_readable_with, render_web_metrics


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    # Touches nothing: a liveness probe must not restart the process because the database is down.
    return JsonResponse({"status": "alive"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    result = readiness()
    return JsonResponse(result.as_dict(), status=200 if result.ready else 503)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_readable_with(request.headers.get("Authorization")):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render_web_metrics()
    return HttpResponse(body, content_type=content_type)
