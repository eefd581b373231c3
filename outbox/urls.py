"""Routes of the ops dashboard; config/urls.py mounts them under /ops/."""

from django.urls import path

from outbox import views

app_name = "ops"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("status.json", views.status_json, name="status"),
    path("dead-events/retry/", views.retry_dead_event, name="retry-dead-event"),
]
