"""The event admin's replay action: it publishes, so it lives with the relay, on top of
`outbox.admin.OutboxEventAdmin` (the outbox knows nothing of the relay)."""

from __future__ import annotations

from django.contrib import admin, messages

from outbox.admin import OutboxEventAdmin
from outbox.models import OutboxEvent
from relay.replay import ReplaySelection, ReplayStopped, plan_replay, replay_events

# A replay runs inside the request; anything larger belongs to `outbox_replay`, with its progress bar.
ADMIN_REPLAY_LIMIT = 1000


class ReplayingOutboxEventAdmin(OutboxEventAdmin):
    """The outbox's event admin plus replaying published events to the events exchange."""

    actions = (*OutboxEventAdmin.actions, "replay_published_events")

    @admin.action(description="Replay selected published events to every consumer", permissions=["operate"])
    def replay_published_events(self, request, queryset) -> None:
        selected = queryset.count()
        ids = list(queryset.filter(published_at__isnull=False).values_list("id", flat=True)[: ADMIN_REPLAY_LIMIT + 1])
        if len(ids) > ADMIN_REPLAY_LIMIT:
            self.message_user(
                request,
                f"More than {ADMIN_REPLAY_LIMIT} published events selected: nothing replayed. "
                "Use `manage.py outbox_replay` with filters for a replay this large.",
                messages.ERROR,
            )
            return
        if not ids:
            self.message_user(request, "None of the selected events is published: nothing replayed.", messages.WARNING)
            return
        plan = plan_replay(ReplaySelection(ids=tuple(ids)))
        try:
            result = replay_events(plan)
        except ReplayStopped as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        skipped = selected - len(ids)
        self.message_user(
            request,
            f"Replayed {result.replayed} published event(s), each confirmed by the broker, to {plan.describe_target()}."
            + (f" {skipped} selected event(s) were not published and were left alone." if skipped else ""),
            messages.SUCCESS if result.replayed else messages.WARNING,
        )


admin.site.unregister(OutboxEvent)
admin.site.register(OutboxEvent, ReplayingOutboxEventAdmin)
