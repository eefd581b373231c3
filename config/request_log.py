"""One log line per 4xx/5xx response, with the request id, never the body or the error's text.

Django logs each such response once (`django.request`, or `django.security.*` for a request it
refuses); `RequestLogFilter`, on the console handler, rewrites that record as key=value. A 5xx
keeps its traceback without the exception's message: a database error's message can quote the
values of the statement, message content included. Imported by the logging configuration, so it
imports no app.
"""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

from django.http import HttpRequest


def request_id_of(request: HttpRequest) -> str:
    """The id of `request` (set by RequestIdMiddleware); '-' for a request it never saw."""
    return getattr(request, "request_id", "-")


class RequestLogFilter(logging.Filter):
    """Make Django's record of a 4xx/5xx response one key=value line with the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        status = getattr(record, "status_code", None)
        # runserver's access line (django.server) carries the socket as its `request`: it is
        # already one line without a body, and passes as it is.
        if not isinstance(request, HttpRequest) or status is None:
            return True
        error = getattr(request, "error_type", None)
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            error = kind.__name__
            if status >= 500:
                # The frames only: the message of, say, a DataError quotes the rejected values.
                record.exc_text = f"Traceback (exception message left out):\n{''.join(traceback.format_tb(tb))}{error}"
            else:
                record.exc_info = None  # the client's mistake, said by the type alone
        record.msg = "http.error status=%d method=%s path=%s request_id=%s" + (" error=%s" if error else "")
        record.args = (status, request.method, quote(request.path), request_id_of(request)) + (
            (error,) if error else ()
        )
        return True
