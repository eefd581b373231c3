"""Read-only admin pages for the event log and the inbox: operators look, the database guards."""

from __future__ import annotations

from django.contrib import admin

from outbox.models import InboxEntry, OutboxEvent


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
        return (("pending", "Pending"), ("published", "Published"))

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(published_at__isnull=True)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "aggregate_type", "aggregate_id", "occurred_at", "published_at", "attempts")
    list_filter = (EventStateFilter, "event_type", "aggregate_type")
    search_fields = ("=event_id", "=aggregate_id")
    ordering = ("-id",)
    show_full_result_count = False  # count(*) on a large event table is slow


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin):
    list_display = ("consumer", "event_type", "event_id", "processed_at")
    list_filter = ("consumer", "event_type")
    search_fields = ("=event_id",)
    ordering = ("-id",)
    show_full_result_count = False
