"""Prometheus metrics of the messaging domain (no labels that could carry content)."""

from prometheus_client import Counter

NOTIFICATIONS_CREATED = Counter(
    "messaging_notifications_created_total", "Notifications created from message.created events"
)
NOTIFICATIONS_READ = Counter("messaging_notifications_read_total", "Notifications marked read")
