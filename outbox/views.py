"""The ops dashboard: a page over `outbox.status.ops_snapshot()` that polls for updates.

Views stay thin: who may look and who may act is `outbox.permissions` (the admin's rule), the
snapshot is read in `outbox.status`, a dead event is sent again by
`outbox.services.retry_dead_events`; here requests are checked and answers shaped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from outbox.metrics_server import worker_metrics_locations
from outbox.models import OutboxEvent
from outbox.permissions import can_operate_events, can_view_events
from outbox.selectors import dead_events
from outbox.services import retry_dead_events
from outbox.status import ops_snapshot

logger = logging.getLogger(__name__)

# How often the page asks for a fresh snapshot: often enough to watch a backlog drain, and a
# handful of cheap queries per open page each time.
REFRESH_SECONDS = 5


View = Callable[..., HttpResponse]


def allowed_by(rule: Callable[..., bool], refusal: str) -> Callable[[View], View]:
    """Anonymous users go to the admin login (and come back); signed-in users `rule` refuses get a 403."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
            if not rule(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return checked

    return decorate


viewers_only = allowed_by(
    can_view_events, "The ops dashboard is for staff with the view or change permission on outbox events."
)
operators_only = allowed_by(
    can_operate_events, "Sending dead events again needs the change permission on outbox events."
)


@never_cache
@viewers_only
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page; it renders the embedded snapshot at once, then polls `status_json`.

    A user who may only look gets no "Send again" buttons; the endpoint refuses them anyway.
    """
    return render(
        request,
        "outbox/ops.html",
        {
            "snapshot": ops_snapshot().as_dict(),
            "refresh_seconds": REFRESH_SECONDS,
            "worker_metrics": worker_metrics_locations(),
            "can_operate": can_operate_events(request.user),
        },
    )


@never_cache
@viewers_only
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    """The snapshot as JSON, as `outbox_status --json` prints it."""
    return JsonResponse(ops_snapshot().as_dict())


@never_cache
@operators_only
@require_POST
def retry_dead_event(request: HttpRequest) -> HttpResponse:
    """Send one dead event again (back to pending with a fresh attempt budget), then back to the page."""
    raw_id = request.POST.get("event_id", "")
    if not raw_id.isdigit():
        return HttpResponseBadRequest(f"event_id must be an outbox event id (a positive integer), not {raw_id!r}")
    event_id = int(raw_id)
    if retry_dead_events(dead_events(ids=[event_id])):
        logger.info("ops.dead_event_retried event=%s user_id=%s", event_id, request.user.pk)
        messages.success(request, f"Event {event_id} is pending again; a running relay publishes it.")
    else:
        event = OutboxEvent.objects.filter(pk=event_id).only("published_at", "dead_at").first()
        if event is None:
            messages.error(request, f"There is no outbox event {event_id}.")
        else:
            messages.warning(request, f"Event {event_id} is not dead (it is {event.state}); nothing was sent.")
    return redirect("ops:dashboard")
