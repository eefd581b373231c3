"""The bodies the API takes: JSON of a bounded size, UTF-8, one meaning per document.

Anything else is a 4xx with a JSON `detail` before a view sees it:
- a body past DATA_UPLOAD_MAX_MEMORY_SIZE: 413, refused from its Content-Length before anything
  reads it (`config.web_errors.OversizedBodyMiddleware`; Django's own check would be an HTML 400 with a traceback);
- not UTF-8, not JSON, nested past what the parser can follow, NaN/Infinity, a number that is no
  finite float or an integer past 4,300 digits, an object naming a key twice, a lone surrogate in
  any string or key (no database or renderer can encode it): 400 (`StrictJSONParser`);
- another content type: 415 (DRF), no body: the fields' own 400s.
"""

from __future__ import annotations

import json
import math
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

NOT_UTF8 = "The request body is not valid UTF-8."
NOT_JSON = "The request body is not valid JSON: {reason}."
TOO_DEEP = "The request body is nested too deeply."
DUPLICATE_KEY = "The request body names the key {key} more than once."
NOT_A_NUMBER = "The request body holds {value}, which is not a JSON number."
NUMBER_TOO_LARGE = "The request body holds a number too large to read."
LONE_SURROGATE = "The request body holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text."
TOO_LARGE = "The request body is larger than {limit} bytes."

# Only a \u escape can put a surrogate in a string (strict UTF-8 decoding refuses encoded ones),
# so the documents without one are not walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _refuse_constant(value: str):
    raise ParseError(NOT_A_NUMBER.format(value=value))


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ParseError(NUMBER_TOO_LARGE)
    return value


def _object_without_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        # The key as JSON, escaped: it may hold anything, a surrogate included.
        raise ParseError(DUPLICATE_KEY.format(key=json.dumps(duplicate)))
    return document


def _holds_a_lone_surrogate(document: object) -> bool:
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def parse_json_body(body: bytes) -> object:
    """The JSON document in `body`, or a ParseError (400) saying what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(NOT_UTF8) from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object_without_duplicate_keys,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except RecursionError:
        raise ParseError(TOO_DEEP) from None
    except json.JSONDecodeError as exc:
        raise ParseError(NOT_JSON.format(reason=exc.msg)) from None
    except ValueError:
        # int() past sys.get_int_max_str_digits()
        raise ParseError(NUMBER_TOO_LARGE) from None
    if _SURROGATE_ESCAPE.search(text) and _holds_a_lone_surrogate(document):
        raise ParseError(LONE_SURROGATE)
    return document


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, with every refusal of `parse_json_body` a 400 that says why."""

    def parse(self, stream, media_type=None, parser_context=None) -> object:
        # The size was checked from Content-Length (config.web_errors); read one byte more
        # than the limit all the same, so no stream is ever read whole into memory.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise ParseError(TOO_LARGE.format(limit=limit))
        return parse_json_body(body)
