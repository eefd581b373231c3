"""Every body the API cannot take is a 4xx with a JSON `detail` that says why; nothing is written."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from messaging.models import Message
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

JSON = "application/json"
UPLOAD_LIMIT = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE default, which settings keep


def body(text: str) -> bytes:
    return text.encode()


# (body, content type, status, words of the detail); the valid fields around each fault show the
# fault alone is refused.
CORPUS = {
    "nested-100000-deep": (body("[" * 100_000 + "]" * 100_000), JSON, 400, "nested too deeply"),
    "nested-objects-100000-deep": (body('{"a":' * 100_000 + "1" + "}" * 100_000), JSON, 400, "nested too deeply"),
    "invalid-utf8": (b'{"receiver": "carol", "content": "\xff\xfe"}', JSON, 400, "not valid UTF-8"),
    "encoded-surrogate": (b'{"receiver": "carol", "content": "\xed\xa0\x80"}', JSON, 400, "not valid UTF-8"),
    "lone-surrogate-in-value": (body(r'{"receiver": "carol", "content": "hi \ud800"}'), JSON, 400, "surrogate"),
    "lone-surrogate-in-unknown-key": (
        body(r'{"receiver": "carol", "content": "hi", "\udfff": 1}'),
        JSON,
        400,
        "surrogate",
    ),
    "lone-surrogate-in-receiver": (body(r'{"receiver": "\udc00", "content": "hi"}'), JSON, 400, "surrogate"),
    "nan": (body('{"receiver": "carol", "content": NaN}'), JSON, 400, "NaN"),
    "infinity": (body('{"receiver": "carol", "content": "hi", "x": -Infinity}'), JSON, 400, "Infinity"),
    "huge-float": (body('{"receiver": "carol", "content": 1e999999}'), JSON, 400, "too large"),
    "huge-integer": (body('{"receiver": "carol", "content": ' + "9" * 5000 + "}"), JSON, 400, "too large"),
    "duplicate-keys": (
        body('{"receiver": "carol", "content": "first", "content": "second"}'),
        JSON,
        400,
        'key "content" more than once',
    ),
    "duplicate-unknown-keys-with-surrogates": (
        body(r'{"receiver": "carol", "content": "hi", "\ud800": 1, "\ud800": 2}'),
        JSON,
        400,
        "more than once",
    ),
    "not-json": (body('{"receiver": "carol", "content": '), JSON, 400, "not valid JSON"),
    "byte-order-mark": (b"\xef\xbb\xbf" + body('{"receiver": "carol", "content": "hi"}'), JSON, 400, "not valid"),
    "over-the-upload-limit": (
        body(json.dumps({"receiver": "carol", "content": "x" * UPLOAD_LIMIT})),
        JSON,
        413,
        "larger than",
    ),
    "50-mb": (body('{"receiver": "carol", "content": "' + "x" * 50_000_000 + '"}'), JSON, 413, "larger than"),
    "50-mb-form": (b"content=" + b"x" * 50_000_000, "application/x-www-form-urlencoded", 413, "larger than"),
    "wrong-content-type": (body('{"receiver": "carol", "content": "hi"}'), "text/plain", 415, "Unsupported media"),
    "form-content-type": (b"receiver=carol&content=hi", "application/x-www-form-urlencoded", 415, "Unsupported"),
    "empty": (b"", JSON, 400, None),
    "null": (body("null"), JSON, 400, None),
    "a-list": (body('[{"receiver": "carol", "content": "hi"}]'), JSON, 400, None),
    "a-string": (body('"hi"'), JSON, 400, None),
    "nul-in-content": (body(r'{"receiver": "carol", "content": "hi\u0000"}'), JSON, 400, None),
    "nul-in-receiver": (body(r'{"receiver": "car\u0000ol", "content": "hi"}'), JSON, 400, None),
}


@pytest.fixture(params=["token", "session"])
def sender(request, alice, client_for) -> APIClient:
    """Alice by token or by session: the session's CSRF check reads a form body before DRF does."""
    if request.param == "token":
        client = client_for(alice)
    else:
        client = APIClient()
        client.force_login(alice)
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("case", CORPUS.values(), ids=CORPUS.keys())
def test_a_body_the_api_cannot_take_is_a_json_4xx_and_writes_nothing(case, sender, carol, settings, caplog):
    settings.DEBUG = True  # the default outside production: no HTML debug page either
    data, content_type, status, words = case

    response = sender.generic("POST", "/api/messages/", data, content_type=content_type)

    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == JSON
    detail = response.json()
    if words is not None:
        assert words in detail["detail"]
    assert not Message.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert "Traceback" not in caplog.text
