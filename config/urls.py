"""URL routes of the messaging service."""

from django.contrib import admin
from django.urls import include, path

from outbox import views as operations

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("messaging.api.urls")),
    # Probes and Prometheus, at the root where orchestrators and scrapers look for them.
    path("healthz", operations.healthz, name="healthz"),
    path("readyz", operations.readyz, name="readyz"),
    path("metrics", operations.metrics, name="metrics"),
]

# JSON under /api/ (an unknown path or a malformed id), Django's page elsewhere.
handler404 = "messaging.api.errors.page_not_found"
