"""The CloudEvents mapping: an event written as a CloudEvent (structured and binary) reads back
as the same event; malformed CloudEvents are refused naming the event and the attribute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagas.cloudevents import (
    from_binary,
    from_structured,
    is_json_type,
    to_cloudevent,
    to_http,
)
from sagas.events import Event, EventError
from sagas.intake import Intake
from sagas.jsontext import parse_json

RECEIVED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SENT = datetime(2026, 5, 1, 11, 59, 30, 250000, tzinfo=UTC)


def command() -> Event:
    return Event.create(
        "ReserveInventory",
        {"orderId": "o-1", "items": [{"sku": "a", "quantity": 2}]},
        at=SENT,
        event_id="evt-1",
        saga_id="saga-1",
        correlation_id="corr-1",
        causation_id="cause-1",
        idempotency_key="saga-1:reserve:1",
        attempt=2,
        schema_version=3,
    )


def structured(**attributes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/shop",
        "type": "OrderCreated",
        "time": "2026-05-01T11:00:00Z",
        "data": {"orderId": "o-1"},
    }
    for name, value in attributes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def refusal(value: Any) -> str:
    with pytest.raises(EventError) as caught:
        Intake().from_dict(from_structured(value, received_at=RECEIVED))
    return str(caught.value)


def test_a_command_written_in_structured_mode_reads_back_the_same() -> None:
    event = command()
    message = to_http(event, source="/sagas", subject="order o-1")
    assert message.headers["content-type"] == "application/cloudevents+json"
    written = parse_json(message.body)
    assert written["id"] == "evt-1"
    assert written["type"] == "ReserveInventory"
    assert written["subject"] == "order o-1"
    assert written["sagaid"] == "saga-1"
    assert written["idempotencykey"] == "saga-1:reserve:1"
    assert written["attempt"] == 2
    assert written["schemaversion"] == 3
    assert written["datacontenttype"] == "application/json"
    back = Intake().from_dict(from_structured(written, received_at=RECEIVED))
    assert back == event


def test_a_command_written_in_binary_mode_reads_back_the_same() -> None:
    event = command()
    message = to_http(event, source="/sagas", binary=True)
    assert message.headers["ce-id"] == "evt-1"
    assert message.headers["ce-attempt"] == "2"
    mapped = from_binary(
        message.headers.items(),
        message.body,
        content_type=message.headers["content-type"],
        received_at=RECEIVED,
    )
    assert Intake().from_dict(mapped) == event


def test_every_extension_name_is_lowercase_letters_and_digits() -> None:
    attributes = to_cloudevent(command(), source="/sagas").get_attributes()
    assert all(name.isalnum() and name.islower() for name in attributes)


def test_an_event_without_time_is_stamped_with_its_receipt_and_without_data_has_none() -> None:
    event = Intake().from_dict(
        from_structured(structured(time=None, data=None), received_at=RECEIVED)
    )
    assert event.timestamp == RECEIVED
    assert event.data == {}
    assert event.schema_version == 1


def test_an_offset_time_keeps_its_instant() -> None:
    value = structured(time="2026-05-01T13:00:00.123+02:00")
    event = Intake().from_dict(from_structured(value, received_at=RECEIVED))
    assert event.timestamp == datetime(
        2026, 5, 1, 13, 0, 0, 123000, tzinfo=timezone(timedelta(hours=2))
    )


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"id": None}, "required attribute(s) missing: id"),
        ({"source": None, "specversion": None}, "missing: source, specversion"),
        ({"type": None}, "missing: type"),
        ({"specversion": "0.3"}, "'specversion': Attribute 'specversion' must be '1.0'"),
        ({"id": 7}, "'id': must be a string"),
        ({"id": ""}, "'id'"),
        ({"source": ""}, "'source'"),
        ({"time": "2026-05-01"}, "time: '2026-05-01' is not an RFC 3339 timestamp"),
        ({"time": "20260501T110000Z"}, "is not an RFC 3339 timestamp"),
        ({"time": "2026-05-01T11:00:00"}, "is not an RFC 3339 timestamp"),
        ({"time": "2026-02-30T11:00:00Z"}, "is not a valid date and time"),
        ({"time": 1714560000}, "time: 1714560000 is not an RFC 3339 timestamp"),
        ({"time": "yesterday"}, "not an RFC 3339"),
        ({"data": [1, 2]}, "data: must be a JSON object, not an array"),
        ({"data": "text"}, "data: must be a JSON object, not a string"),
        ({"data_base64": "AAAA", "data": None}, "data_base64: binary data is not taken"),
        ({"datacontenttype": "text/plain"}, "datacontenttype: 'text/plain' is not JSON"),
        ({"sagaId": "s-1"}, "'sagaId' should only contain lowercase letters and numbers"),
        ({"attempt": "two"}, "attempt: must be an integer, not 'two'"),
        ({"attempt": True}, "attempt: must be an integer"),
        ({"schemaversion": 0}, "schemaVersion"),
        ({"traceparent": {"a": 1}}, "'traceparent': an attribute is a string"),
        ({"type": "sagas.HandlerSucceeded"}, "is not accepted from outside"),
        ({"type": "SAGAS.CancelRequested"}, "is not accepted from outside"),
        ({"id": "x\x00y"}, "eventId: must not contain NUL characters"),
        ({"sagaid": "s" * 65}, "sagaId: at most 64 characters"),
    ],
)
def test_a_malformed_cloudevent_is_refused_naming_what(
    attributes: dict[str, Any], expected: str
) -> None:
    assert expected in refusal(structured(**attributes))


def test_a_refusal_names_the_event_id_when_there_is_one() -> None:
    assert refusal(structured(time="soon")).startswith("event 'e-1': ")


def test_unknown_extensions_and_the_subject_are_taken_but_not_kept() -> None:
    value = structured(subject="order o-1", traceparent="00-ab-cd-01", dataschema="/s.json")
    event = Intake().from_dict(from_structured(value, received_at=RECEIVED))
    assert event.event_id == "e-1"
    assert "traceparent" not in event.to_json()


def test_a_null_optional_attribute_is_absent() -> None:
    event = Intake().from_dict(
        from_structured(
            structured(subject=None, time=None) | {"subject": None}, received_at=RECEIVED
        )
    )
    assert event.timestamp == RECEIVED


def test_a_cloudevent_that_is_not_an_object_is_refused() -> None:
    assert "must be a JSON object, not an array" in refusal([1])


def binary(
    headers: dict[str, str], body: bytes = b"{}", content_type: str | None = "application/json"
) -> dict[str, Any]:
    base = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/shop",
        "ce-type": "OrderCreated",
    }
    return from_binary(
        (base | headers).items(), body, content_type=content_type, received_at=RECEIVED
    )


def test_binary_mode_percent_decodes_its_headers() -> None:
    mapped = binary(
        {
            "ce-source": "/shop%20eu",
            "ce-time": "2026-05-01T11:00:00%2B01:00",
            "ce-sagaid": "s%C3%A9",
        }
    )
    event = Intake().from_dict(mapped)
    assert event.saga_id == "sé"
    assert event.timestamp.utcoffset() == timedelta(hours=1)


BASE_HEADERS = [
    ("ce-specversion", "1.0"),
    ("ce-id", "b-1"),
    ("ce-source", "/shop"),
    ("ce-type", "OrderCreated"),
]


def with_headers(*extra: tuple[str, str], without: str = "") -> list[tuple[str, str]]:
    """The base headers less those named in ``without`` (space-separated), plus ``extra``."""
    dropped = set(without.split())
    return [(k, v) for k, v in BASE_HEADERS if k not in dropped] + list(extra)


JSON = "application/json"


@pytest.mark.parametrize(
    ("headers", "body", "content_type", "expected"),
    [
        (with_headers(("ce-id", "b-2")), b"{}", JSON, "'ce-id' is given more than once"),
        (with_headers(("CE-ID", "b-2")), b"{}", JSON, "'CE-ID' is given more than once"),
        (with_headers(without="ce-specversion"), b"{}", JSON, "missing: specversion"),
        (
            with_headers(without="ce-id ce-source ce-type"),
            b"",
            None,
            "missing: id, source, type",
        ),
        (with_headers(("ce-specversion", "0.3"), without="ce-specversion"), b"{}", JSON, "'1.0'"),
        (
            with_headers(("ce-datacontenttype", JSON)),
            b"{}",
            JSON,
            "the data's type is the Content-Type",
        ),
        (with_headers(("ce-sagaid", "%FF")), b"{}", JSON, "percent-encoding is not UTF-8"),
        (with_headers(("ce-sagaid", "\xe9")), b"{}", JSON, "not ASCII"),
        (with_headers(("ce-time", "2026-05-01 11:00")), b"{}", JSON, "not an RFC 3339"),
        (with_headers(), b"hello", "text/plain", "takes JSON data only, not 'text/plain'"),
        (with_headers(), b"{}", None, "takes JSON data only, not 'untyped'"),
        (with_headers(), b'{"a": 1, "a": 2}', JSON, "data: key 'a' appears twice"),
        (with_headers(), b'{"a": NaN}', JSON, "data: NaN is not a JSON number"),
        (with_headers(), b"\xff{}", JSON, "data: not UTF-8"),
        (with_headers(), b"[" * 5000, JSON, "data: nested deeper than"),
        (with_headers(), b"[1]", JSON, "data: must be a JSON object, not an array"),
        (
            with_headers(("ce-type", "sagas.CancelRequested"), without="ce-type"),
            b"{}",
            JSON,
            "from outside",
        ),
    ],
)
def test_a_malformed_binary_cloudevent_is_refused_naming_what(
    headers: list[tuple[str, str]], body: bytes, content_type: str | None, expected: str
) -> None:
    with pytest.raises(EventError) as caught:
        read_binary(headers, body, content_type)
    assert expected in str(caught.value)


def read_binary(headers: list[tuple[str, str]], body: bytes, content_type: str | None) -> Event:
    mapped = from_binary(headers, body, content_type=content_type, received_at=RECEIVED)
    return Intake().from_dict(mapped)


def test_a_binary_cloudevent_without_a_body_has_no_data() -> None:
    assert Intake().from_dict(binary({}, b"", None)).data == {}


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ('application/json; charset="UTF-8"', True),
        ("application/cloudevents+json", True),
        ("text/json", True),
        ("application/json; charset=latin-1", False),
        ("text/plain", False),
        ("application/jsonx", False),
        ("", False),
    ],
)
def test_what_counts_as_json(content_type: str, json: bool) -> None:
    assert is_json_type(content_type) is json


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "specversion",
                "id",
                "source",
                "type",
                "time",
                "data",
                "attempt",
                "sagaid",
                "X",
                "data_base64",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=30)
        | st.lists(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
)
def test_any_structured_input_gives_an_event_or_an_event_error(value: dict[str, Any]) -> None:
    try:
        outcome = Intake().from_dict(from_structured(value, received_at=RECEIVED)).event_id
    except EventError as exc:
        outcome = str(exc)
    assert outcome
