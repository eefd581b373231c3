"""An append's JSON: encoded by orjson, read exactly as Django's JSON encoder would have written it."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import uuid

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from outbox.errors import InvalidEventPayload
from outbox.event_rows import COLUMNS, EventDraft, event_rows
from outbox.models import OutboxEvent
from outbox.services import emit_many
from tests.helpers import register_schema_for_this_test

ANYTHING = "test.anything"
PAYLOAD = COLUMNS.index("payload")


@pytest.fixture(autouse=True)
def anything_goes_schema(monkeypatch):
    register_schema_for_this_test(monkeypatch, ANYTHING, {"type": "object"})


def as_django_writes_it(document):
    return json.loads(DjangoJSONEncoder().encode(document))


def encoded(payload, headers=None):
    [row] = event_rows([EventDraft("thing", "1", ANYTHING, payload, headers or {})])
    return row


scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # past 64 bits too, which orjson refuses and the stdlib encoder writes
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.uuids()
    | st.datetimes()
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.decimals(allow_nan=False, allow_infinity=False)
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text() | st.integers(), documents, max_size=5))
def test_a_payload_reads_as_djangos_encoder_writes_it(payload):
    row = encoded(payload)

    assert row.payload == as_django_writes_it(payload)
    # The text stored is the document checked against the schema.
    assert json.loads(row.values[PAYLOAD]) == row.payload


def test_datetimes_keep_their_wire_format():
    sent_at = dt.datetime(2026, 11, 25, 3, 4, 5, 678901, tzinfo=dt.UTC)

    row = encoded({"sent_at": sent_at, "day": sent_at.date(), "id": uuid.UUID(int=1)})

    assert row.payload == {
        "sent_at": "2026-11-25T03:04:05.678Z",
        "day": "2026-11-25",
        "id": "00000000-0000-0000-0000-000000000001",
    }


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_a_payload_holding_a_number_json_cannot_write_is_refused(number):
    # orjson would write it as null, silently; the append is refused instead.
    with pytest.raises(InvalidEventPayload, match=r"test\.anything payload cannot be encoded as JSON"):
        encoded({"ratio": number})


def test_headers_holding_a_number_json_cannot_write_are_refused():
    with pytest.raises(InvalidEventPayload, match=r"test\.anything headers cannot be encoded as JSON"):
        encoded({}, headers={"weight": math.nan})


def test_a_value_no_encoder_knows_is_a_type_error():
    with pytest.raises(TypeError, match="not JSON serializable"):
        encoded({"thing": object()})


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("returning", [True, False], ids=["bound-by-the-server", "written-behind-as-literals"])
def test_the_stored_payload_is_the_document_written(returning):
    payload = {
        "big": 2**80,
        7: "a key that is not a string",
        "price": decimal.Decimal("12.50"),
        "none": None,
        "text": "naïve 'quoted' \\ text; -- null",
    }
    with transaction.atomic():
        emit_many([EventDraft("thing", "1", ANYTHING, payload)], returning=returning)

    assert OutboxEvent.objects.get().payload == as_django_writes_it(payload)
