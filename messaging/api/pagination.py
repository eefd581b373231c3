"""Cursor pagination, newest first: a page costs one query, and new items never shift the next page."""

from __future__ import annotations

from django.conf import settings
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination


class NewestFirstPagination(CursorPagination):
    """Pages of `settings.API_PAGE_SIZE` items; the id breaks ties between equal timestamps."""

    def get_page_size(self, request) -> int:
        return settings.API_PAGE_SIZE

    def decode_cursor(self, request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        # DRF checks the offset but not the position: a cursor crafted with a position that is
        # no timestamp would otherwise reach the query.
        if cursor is not None and cursor.position is not None and not _is_timestamp(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor


def _is_timestamp(position: str) -> bool:
    try:
        return parse_datetime(position) is not None
    except ValueError:  # well formed, but no such date
        return False


class MessagePagination(NewestFirstPagination):
    ordering = ("-timestamp", "-message_id")


class NotificationPagination(NewestFirstPagination):
    ordering = ("-created_at", "-notification_id")
