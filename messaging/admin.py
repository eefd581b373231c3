"""Admin pages for messages and notifications; actions are thin shells over the services."""

from __future__ import annotations

from django.contrib import admin
from django.utils.text import Truncator

from messaging import services
from messaging.models import Message, Notification

ADMIN_PREVIEW_LENGTH = 50


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("sender", "receiver", "content_preview", "timestamp", "is_read")
    list_filter = ("is_read", "timestamp")
    search_fields = ("sender__username", "receiver__username", "content")
    list_select_related = ("sender", "receiver")
    date_hierarchy = "timestamp"
    readonly_fields = ("message_id",)
    fieldsets = (
        (None, {"fields": ("message_id", "sender", "receiver")}),
        ("Content", {"fields": ("content",)}),
        ("Status", {"fields": ("timestamp", "is_read")}),
    )
    actions = ("mark_selected_read",)

    @admin.display(description="content")
    def content_preview(self, message: Message) -> str:
        return Truncator(message.content).chars(ADMIN_PREVIEW_LENGTH)

    @admin.action(description="Mark selected messages as read")
    def mark_selected_read(self, request, queryset) -> None:
        # Through mark_read(), which appends a message.read event for each message it flips.
        count = services.mark_messages_read(queryset)
        self.message_user(request, f"{count} message(s) marked as read.")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("user", "notification_type", "title", "created_at", "is_read")
    list_filter = ("notification_type", "is_read", "created_at")
    search_fields = ("user__username", "title")
    list_select_related = ("user", "message")
    date_hierarchy = "created_at"
    readonly_fields = ("notification_id", "source_event_id", "created_at")
    fieldsets = (
        (None, {"fields": ("notification_id", "user", "notification_type", "message")}),
        ("Content", {"fields": ("title", "content")}),
        ("Status", {"fields": ("is_read", "created_at", "source_event_id")}),
    )
    raw_id_fields = ("message",)
    actions = ("mark_selected_read", "mark_selected_unread")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "message")

    def has_add_permission(self, request) -> bool:
        # Notifications are built by the event consumer, not by hand.
        return False

    @admin.action(description="Mark selected notifications as read")
    def mark_selected_read(self, request, queryset) -> None:
        count = services.mark_notifications_read(queryset)
        self.message_user(request, f"{count} notification(s) marked as read.")

    @admin.action(description="Mark selected notifications as unread")
    def mark_selected_unread(self, request, queryset) -> None:
        count = services.mark_notifications_unread(queryset)
        self.message_user(request, f"{count} notification(s) marked as unread.")
