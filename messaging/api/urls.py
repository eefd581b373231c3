"""Routes of the API, mounted at /api/ by config/urls.py."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from messaging.api.views import MessageViewSet, NotificationViewSet, api_root

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
]
