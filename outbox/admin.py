"""Admin pages for the event log and the inbox: operators look, the database guards.

Event content is read-only. The action to send dead events again is a thin shell over the service
`outbox_retry` uses; it needs the change permission on events, which view-only staff lack
(`outbox.permissions`, the rule /ops/ follows too). The replay action needs the relay, so
`relay/admin.py` adds it.
"""

from __future__ import annotations

from django.contrib import admin, messages

from outbox.models import PENDING, InboxEntry, OutboxEvent
from outbox.permissions import can_operate_events
from outbox.schemas import registered_schemas
from outbox.services import retry_dead_events


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class EventStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("pending", "Pending"), ("published", "Published"), ("dead", "Dead"))

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(PENDING)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "dead":
            return queryset.filter(dead_at__isnull=False, published_at__isnull=True)
        return queryset


class EventTypeFilter(admin.SimpleListFilter):
    """The registered event types: a DISTINCT over the whole event table would scan it."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(event_type, event_type) for event_type in sorted({s.event_type for s in registered_schemas()})]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "state",
        "occurred_at",
        "published_at",
        "attempts",
    )
    list_filter = (EventStateFilter, EventTypeFilter, "aggregate_type")
    search_fields = ("=event_id", "=aggregate_id")
    ordering = ("-id",)
    show_full_result_count = False  # count(*) on a large event table is slow
    actions = ("send_dead_events_again",)

    def has_operate_permission(self, request) -> bool:
        return can_operate_events(request.user)

    @admin.action(description="Send selected dead events again", permissions=["operate"])
    def send_dead_events_again(self, request, queryset) -> None:
        selected = queryset.count()
        sent = retry_dead_events(queryset)
        self.message_user(
            request,
            f"{sent} dead event(s) are pending again; a running relay publishes them."
            + (f" {selected - sent} selected event(s) were not dead and were left alone." if selected > sent else ""),
            messages.SUCCESS if sent else messages.WARNING,
        )


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin):
    list_display = ("consumer", "event_type", "event_id", "processed_at")
    list_filter = ("consumer", "event_type")
    search_fields = ("=event_id",)
    ordering = ("-id",)
    show_full_result_count = False
