"""API views: parse the request, call one selector or service, shape the response."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.serializers import Serializer

from messaging import selectors, services
from messaging.api import errors
from messaging.api.pagination import MessagePagination, NotificationPagination
from messaging.api.serializers import (
    MessageCreateSerializer,
    MessageFilterSerializer,
    MessageSerializer,
    NotificationFilterSerializer,
    NotificationSerializer,
    ReadAllResultSerializer,
    UnreadCountSerializer,
)
from messaging.api.throttling import MessageCreateThrottle
from messaging.models import Message, Notification


def validated(serializer_class: type[Serializer], data, **context) -> dict:
    """The validated data of `data`, or a 400 with the messages per field."""
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request: Request) -> Response:
    """The API's entry point: where each endpoint lives, readable without a token."""
    return Response(
        {
            name: reverse(f"api:{route}", request=request)
            for name, route in (
                ("messages", "message-list"),
                ("notifications", "notification-list"),
                ("unread_notifications_count", "notification-unread-count"),
                ("docs", "docs"),
                ("schema", "schema"),
            )
        }
    )


_DETAIL_ERRORS = {401: errors.UNAUTHENTICATED, 404: errors.NOT_FOUND}
_LIST_ERRORS = {400: errors.BAD_REQUEST, 401: errors.UNAUTHENTICATED, 404: errors.INVALID_CURSOR}


@extend_schema_view(
    list=extend_schema(
        summary="Your messages, newest first",
        parameters=[MessageFilterSerializer],
        responses={200: MessageSerializer(many=True), **_LIST_ERRORS},
    ),
    retrieve=extend_schema(
        summary="One message you sent or received", responses={200: MessageSerializer, **_DETAIL_ERRORS}
    ),
    create=extend_schema(
        summary="Send a message",
        request=MessageCreateSerializer,
        examples=[
            OpenApiExample(
                "A message to bob", value={"receiver": "bob", "content": "Lunch at noon?"}, request_only=True
            )
        ],
        responses={
            201: MessageSerializer,
            400: errors.BAD_REQUEST,
            401: errors.UNAUTHENTICATED,
            403: errors.FORBIDDEN,
            429: errors.THROTTLED,
        },
    ),
    read=extend_schema(
        summary="Mark a message you received read (again: no change)",
        request=None,
        responses={200: MessageSerializer, 403: errors.FORBIDDEN, **_DETAIL_ERRORS},
    ),
)
class MessageViewSet(viewsets.GenericViewSet):
    """Messages between users; you see those you sent or received, others' are 404."""

    serializer_class = MessageSerializer
    pagination_class = MessagePagination
    queryset = Message.objects.none()  # for the schema generator; requests use the selectors
    lookup_value_converter = "uuid"

    def get_throttles(self):
        if self.action == "create":
            return [MessageCreateThrottle()]
        return super().get_throttles()

    def list(self, request: Request) -> Response:
        filters = validated(MessageFilterSerializer, request.query_params.dict())
        page = self.paginate_queryset(selectors.messages_of(request.user, **filters))
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk) -> Response:
        return Response(MessageSerializer(self._visible_message(pk)).data)

    def create(self, request: Request) -> Response:
        data = validated(MessageCreateSerializer, request.data, sender=request.user)
        message = services.send_message(sender=request.user, receiver=data["receiver"], content=data["content"])
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk) -> Response:
        message = services.mark_message_read(message=self._visible_message(pk), reader=request.user)
        return Response(MessageSerializer(message).data)

    def _visible_message(self, pk) -> Message:
        try:
            return selectors.message_of(self.request.user, pk)
        except Message.DoesNotExist:
            raise NotFound from None


@extend_schema_view(
    list=extend_schema(
        summary="Your notifications, newest first",
        parameters=[NotificationFilterSerializer],
        responses={200: NotificationSerializer(many=True), **_LIST_ERRORS},
    ),
    read=extend_schema(
        summary="Mark one of your notifications read (again: no change)",
        request=None,
        responses={200: NotificationSerializer, **_DETAIL_ERRORS},
    ),
    read_all=extend_schema(
        summary="Mark all your notifications read",
        request=None,
        responses={200: ReadAllResultSerializer, 401: errors.UNAUTHENTICATED, 403: errors.FORBIDDEN},
    ),
    unread_count=extend_schema(
        summary="How many of your notifications are unread",
        responses={200: UnreadCountSerializer, 401: errors.UNAUTHENTICATED},
    ),
)
class NotificationViewSet(viewsets.GenericViewSet):
    """Your notifications, built by the consumer from message events; others' are 404."""

    serializer_class = NotificationSerializer
    pagination_class = NotificationPagination
    queryset = Notification.objects.none()  # for the schema generator; requests use the selectors
    lookup_value_converter = "uuid"

    def list(self, request: Request) -> Response:
        filters = validated(NotificationFilterSerializer, request.query_params.dict())
        page = self.paginate_queryset(selectors.notifications_of(request.user, **filters))
        return self.get_paginated_response(NotificationSerializer(page, many=True).data)

    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk) -> Response:
        try:
            notification = selectors.notification_of(request.user, pk)
        except Notification.DoesNotExist:
            raise NotFound from None
        return Response(NotificationSerializer(services.mark_notification_read(notification)).data)

    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        count = services.mark_all_notifications_read(user=request.user)
        return Response(ReadAllResultSerializer({"marked_read": count}).data)

    @action(detail=False, methods=["get"], url_path="unread-count")
    def unread_count(self, request: Request) -> Response:
        return Response(UnreadCountSerializer({"unread": selectors.unread_notification_count(request.user)}).data)
