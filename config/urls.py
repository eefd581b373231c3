"""URL routes of the messaging service."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from outbox import probe_views

urlpatterns = [
    # A page of links for whoever opens the server in a browser: the API, its docs, admin, ops.
    path("", TemplateView.as_view(template_name="messaging/home.html"), name="home"),
    path("admin/", admin.site.urls),
    path("api/", include("messaging.api.urls")),
    # Probes and Prometheus, at the root where orchestrators and scrapers look for them.
    path("healthz", probe_views.healthz, name="healthz"),
    path("readyz", probe_views.readyz, name="readyz"),
    path("metrics", probe_views.metrics, name="metrics"),
    path("ops/", include("outbox.urls")),
]

# JSON under /api/ (an unknown path, a malformed id, a request Django refuses), Django's pages elsewhere.
handler404 = "messaging.api.errors.page_not_found"
handler400 = "messaging.api.errors.bad_request"
# A 503 when the database refuses, JSON under /api/, Django's page elsewhere.
handler500 = "config.web_errors.server_error"
