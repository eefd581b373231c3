"""What Django's error pages (DEBUG on) and error reports show: no password in a URL.

Django hides settings whose names look secret (KEY, PASS, TOKEN...), but DATABASE_URL and
BROKER_URL (and the per-role broker URLs, the WSGI environment's copies of them, a connection
string in a frame's locals) carry their password inside a value with an innocent name.
"""

from __future__ import annotations

import re
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@ — several times in a kombu failover URL ("amqp://…;amqp://…").
_URL_PASSWORD = re.compile(r"(?P<start>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s;]*:)[^@/\s;]+@")
MASK = "********"


def url_without_password(text: str) -> str:
    """`text` with the password of every URL in it masked."""
    return _URL_PASSWORD.sub(rf"\g<start>{MASK}@", text)


class PasswordMaskingReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus URL passwords masked in settings, request META and frame locals."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        if isinstance(value, str):
            value = url_without_password(value)
        return super().cleanse_setting(key, value)

    def cleanse_special_types(self, request: Any, value: Any) -> Any:
        if isinstance(value, str):
            value = url_without_password(value)
        return super().cleanse_special_types(request, value)
