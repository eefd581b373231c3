"""Routes of the API, mounted at /api/ by config/urls.py."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from messaging.api import contract_views
from messaging.api.views import MessageViewSet, NotificationViewSet, api_root
from outbox import schema_views

app_name = "api"

# Path converters: a malformed id matches no route and is a 404, never a query with a bad UUID.
router = SimpleRouter(use_regex_path=False)
router.register("messages", MessageViewSet, basename="message")
router.register("notifications", NotificationViewSet, basename="notification")

urlpatterns = [
    path("", api_root, name="root"),
    *router.urls,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    # The event contract: public, like the API's own schema (EVENT_SCHEMA_BASE_URL points here).
    path("events/asyncapi.json", contract_views.asyncapi_json, name="asyncapi-json"),
    path("events/asyncapi.yaml", contract_views.asyncapi_yaml_document, name="asyncapi-yaml"),
    path("events/schemas/<str:event_type>/v<int:version>.json", schema_views.event_schema, name="event-schema"),
]
