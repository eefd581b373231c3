"""Shapes of the API's requests and responses; the rules they apply come from the services."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.validators import MaxLengthValidator
from rest_framework import serializers

from messaging import selectors, services
from messaging.models import Message, Notification

UNKNOWN_FIELD = "Unknown field."


class RejectUnknownFieldsMixin:
    """Refuse input fields the serializer does not declare (DRF ignores them by default).

    `passed_through` names fields that are allowed but read elsewhere (the pagination cursor).
    """

    passed_through: tuple[str, ...] = ()

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, Mapping):
            allowed = {name for name, field in self.fields.items() if not field.read_only} | set(self.passed_through)
            unknown = {str(name): [UNKNOWN_FIELD] for name in data if name not in allowed}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if unknown and isinstance(error.detail, Mapping):
                raise serializers.ValidationError({**error.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# --- Messages -------------------------------------------------------------------------------


class UserSummarySerializer(serializers.Serializer):
    """A user as other users see them."""

    id = serializers.IntegerField(source="pk", read_only=True)
    username = serializers.CharField(source="get_username", read_only=True)


class MessageSerializer(serializers.ModelSerializer):
    """A message you sent or received."""

    id = serializers.UUIDField(source="message_id", read_only=True)
    sender = UserSummarySerializer(read_only=True)
    receiver = UserSummarySerializer(read_only=True)
    sent_at = serializers.DateTimeField(source="timestamp", read_only=True)

    class Meta:
        model = Message
        fields = ("id", "sender", "receiver", "content", "sent_at", "is_read")
        read_only_fields = fields


class MessageCreateSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """A message to send; fields other than these are refused."""

    receiver = serializers.CharField(
        max_length=150, help_text="Username of the receiver: an active user other than yourself."
    )
    content = serializers.CharField(trim_whitespace=False, help_text="The text: not empty, not only whitespace.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The service applies the same limit; this one puts it in the published schema. Read per
        # instance, so the schema follows the setting.
        self.fields["content"].validators.append(
            MaxLengthValidator(settings.MESSAGE_MAX_LENGTH, message=services.CONTENT_TOO_LONG)
        )

    def validate_receiver(self, username: str):
        receiver = selectors.active_user_by_username(username)
        if receiver is None:
            raise serializers.ValidationError(services.INACTIVE_RECEIVER)
        # The sender, when the view names one: the service refuses a message to oneself anyway.
        sender = self.context.get("sender")
        if sender is not None and receiver.pk == sender.pk:
            raise serializers.ValidationError(services.SELF_RECEIVER)
        return receiver

    def validate_content(self, content: str) -> str:
        if errors := services.message_content_errors(content):
            raise serializers.ValidationError(errors)
        return content


class MessageFilterSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Query parameters of the message list; others are refused."""

    passed_through = ("cursor",)
    box = serializers.ChoiceField(
        choices=selectors.MESSAGE_BOXES,
        required=False,
        help_text="`inbox`: received only; `sent`: sent only; absent: both.",
    )
    unread = serializers.BooleanField(
        required=False, help_text="`true`: unread only; `false`: read only; absent: both."
    )


# --- Notifications --------------------------------------------------------------------------


class NotificationSerializer(serializers.ModelSerializer):
    """A notification of yours."""

    id = serializers.UUIDField(source="notification_id", read_only=True)
    type = serializers.ChoiceField(
        source="notification_type", choices=Notification.NotificationType.choices, read_only=True
    )
    message = serializers.UUIDField(source="message_id", read_only=True, allow_null=True)

    class Meta:
        model = Notification
        fields = ("id", "type", "title", "content", "message", "is_read", "created_at")
        read_only_fields = fields


class NotificationFilterSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    """Query parameters of the notification list; others are refused."""

    passed_through = ("cursor",)
    unread = serializers.BooleanField(
        required=False, help_text="`true`: unread only; `false`: read only; absent: both."
    )


class ReadAllResultSerializer(serializers.Serializer):
    """What marking all your notifications read did."""

    marked_read = serializers.IntegerField(help_text="Notifications that were unread and now are read.")


class UnreadCountSerializer(serializers.Serializer):
    """Your unread notification count."""

    unread = serializers.IntegerField(help_text="Your unread notifications.")
