"""URL routes of the messaging service."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("messaging.api.urls")),
    path("ops/", include("outbox.urls")),
]

# JSON under /api/ (an unknown path or a malformed id), Django's page elsewhere.
handler404 = "messaging.api.errors.page_not_found"
