"""Durations as users write them (30s, 5m, 2h, 1d, 1h30m, 250ms, PT30S, P1D, numbers)."""

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sagas.definitions import (
    RetryPolicy,
    dump_definition,
    format_duration,
    json_schema,
    parse_definition,
    parse_duration,
)

FORMS = "write e.g. 30s, 5m, 2h, 1d, 1h30m or PT30S"


def _patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


# The JSON Schema's pattern for a duration written as a string.
[SCHEMA_PATTERN] = set(_patterns(json_schema()["$defs"]["RetryPolicy"]["properties"]["max_delay"]))


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s5ms6us", timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5006)),
        ("250ms", timedelta(milliseconds=250)),
        ("100us", timedelta(microseconds=100)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("0s", timedelta()),
        (" 5m ", timedelta(minutes=5)),
        ("PT30S", timedelta(seconds=30)),
        ("P1D", timedelta(days=1)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.25S", timedelta(milliseconds=250)),
        (30, timedelta(seconds=30)),
        (0, timedelta()),
        (2.5, timedelta(seconds=2, milliseconds=500)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_duration_is_read_in_every_documented_form(written: object, expected: timedelta) -> None:
    assert parse_duration(written) == expected


@pytest.mark.parametrize(
    "written",
    ["2 hours", "1h 30m", "30S", "30", "", "soon", "-5s", "5 m", "1e3s", "PT", "P", "h", "30sec"],
)
def test_a_bad_duration_names_the_value_and_shows_the_accepted_forms(written: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{written!r} is not a duration; {FORMS}")):
        parse_duration(written)


@pytest.mark.parametrize("written", [None, [30], {"s": 30}])
def test_a_value_of_the_wrong_type_is_not_a_duration(written: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{written!r} is not a duration; {FORMS}")):
        parse_duration(written)


def test_a_boolean_is_not_taken_for_a_number_of_seconds() -> None:
    with pytest.raises(ValueError, match=re.escape("a duration is expected, e.g. 30s, 5m, 2h")):
        parse_duration(True)


@pytest.mark.parametrize(
    ("duration", "written"),
    [
        (timedelta(), "0s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(days=1, microseconds=1), "1d1us"),
        (timedelta(days=400), "400d"),
        (timedelta(seconds=90), "1m30s"),
    ],
)
def test_format_duration_writes_the_compact_form(duration: timedelta, written: str) -> None:
    assert format_duration(duration) == written


@settings(max_examples=100, deadline=None)
@given(st.timedeltas(min_value=timedelta(0)))
def test_format_then_parse_gives_back_the_same_duration(duration: timedelta) -> None:
    written = format_duration(duration)
    assert parse_duration(written) == duration
    assert format_duration(parse_duration(written)) == written


@settings(max_examples=100, deadline=None)
@given(st.timedeltas(min_value=timedelta(0)))
def test_every_formatted_duration_matches_the_schema_pattern(duration: timedelta) -> None:
    assert re.fullmatch(SCHEMA_PATTERN, format_duration(duration))


def test_a_duration_field_reads_and_writes_the_compact_syntax() -> None:
    policy = RetryPolicy(attempts=3, initial_delay="PT1M30S", max_delay=600)
    assert policy.initial_delay == timedelta(minutes=1, seconds=30)
    assert policy.max_delay == timedelta(minutes=10)
    dumped = policy.model_dump(mode="json")
    assert (dumped["initial_delay"], dumped["max_delay"]) == ("1m30s", "10m")


def test_a_definition_reads_a_plain_number_as_seconds_and_writes_it_compact() -> None:
    definition = parse_definition(
        "name: s\ntrigger: T\ncorrelation: id\ndeadline: 5400\n"
        "steps:\n  - name: approve\n    wait: {event: Approved}\n    timeout: 0.25\n"
    )
    assert definition.deadline == timedelta(hours=1, minutes=30)
    assert definition.steps[0].timeout == timedelta(milliseconds=250)
    assert "deadline: 1h30m\n" in dump_definition(definition)
    assert "timeout: 250ms\n" in dump_definition(definition)


def test_a_duration_field_refuses_a_negative_duration() -> None:
    with pytest.raises(ValidationError, match="a duration cannot be negative"):
        RetryPolicy(initial_delay=-1)


def test_retry_back_off_grows_by_the_factor_up_to_max_delay() -> None:
    policy = RetryPolicy(attempts=5, initial_delay="1s", factor=3, max_delay="10s")
    delays = [policy.delay_before(attempt) for attempt in range(1, 6)]
    assert delays == [timedelta(), *(timedelta(seconds=s) for s in (1, 3, 9, 10))]
