"""Strict JSON text: every refusal tried with the input itself, and two properties: any JSON
value round-trips, and any text gives a value or a ``JSONTextError``, never anything else."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagas.jsontext import (
    MAX_INTEGER_DIGITS,
    MAX_JSON_DEPTH,
    JSONDepthError,
    JSONTextError,
    json_depth,
    parse_json,
)


def nested(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "key 'a' appears twice in one object"),
        ('[{"k": 1, "b": 2, "k": 3}]', "key 'k' appears twice in one object"),
        ('{"x": NaN}', "NaN is not a JSON number (line 1, column 7)"),
        ('{"x": Infinity}', "Infinity is not a JSON number (line 1, column 7)"),
        ('{"x":\n  -Infinity}', "-Infinity is not a JSON number (line 2, column 3)"),
        (
            '{"s": "NaN", "x": 1e400}',
            "1e400 is too large for a number (it would be infinite) (line 1, column 19)",
        ),
        (
            '{"x": -1E+999}',
            "-1E+999 is too large for a number (it would be infinite) (line 1, column 7)",
        ),
        (
            '{"n": ' + "9" * (MAX_INTEGER_DIGITS + 1) + "}",
            f"an integer of {MAX_INTEGER_DIGITS + 1:,} digits is longer than the limit of "
            f"{MAX_INTEGER_DIGITS:,} digits (line 1, column 7)",
        ),
        (
            '["\\ud800"]',
            "a string with a lone surrogate (\\ud800), which UTF-8 cannot hold (line 1, column 3)",
        ),
        (
            '{"\\udfff": 1}',
            "a string with a lone surrogate (\\udfff), which UTF-8 cannot hold (line 1, column 3)",
        ),
        ('{"a": 1', "not valid JSON: Expecting ',' delimiter (line 1, column 8)"),
        ("", "not valid JSON: Expecting value (line 1, column 1)"),
        ("[1] [2]", "not valid JSON: Extra data (line 1, column 5)"),
        ('["a\x00"]', "not valid JSON: Invalid control character (line 1, column 4)"),
        ("\x00", "not valid JSON: Expecting value (line 1, column 1)"),
        (nested(65), "nested deeper than 64 levels (line 1, column 65)"),
        (nested(100_000, "{", "}"), "nested deeper than 64 levels (line 1, column 65)"),
        ("\n" + '{"a":' * 70, "nested deeper than 64 levels (line 2, column 321)"),
    ],
)
def test_refused_text_is_named_with_where(text: str, message: str) -> None:
    with pytest.raises(JSONTextError) as refused:
        parse_json(text)
    assert str(refused.value) == message
    with pytest.raises(JSONTextError) as refused_bytes:
        parse_json(text.encode("utf-8", "surrogatepass"))
    assert str(refused_bytes.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a": "\xff"}', "not UTF-8: byte 0xff at offset 7"),
        (b'"\xc3"', "not UTF-8: byte 0xc3 at offset 1"),
        (b'"\xed\xa0\x80"', "not UTF-8: byte 0xed at offset 1"),  # a surrogate, encoded
    ],
)
def test_bytes_that_are_not_utf8_are_named_by_offset(text: bytes, message: str) -> None:
    with pytest.raises(JSONTextError, match=f"^{message}$"):
        parse_json(text)


def test_a_str_holding_what_utf8_cannot_is_refused() -> None:
    """As ``sys.argv`` holds a byte that is not UTF-8 (surrogateescape)."""
    with pytest.raises(JSONTextError) as refused:
        parse_json('{"a": "ok\udcff"}')
    assert str(refused.value) == 'text with a lone surrogate (\\udcff) after \'{"a": "ok\''


def test_the_size_is_measured_in_utf8_bytes_just_under_and_just_over() -> None:
    text = '"' + "é" * 49 + '"'  # 2 + 98 bytes
    assert parse_json(text, max_bytes=100) == "é" * 49
    assert parse_json(text.encode(), max_bytes=100) == "é" * 49
    with pytest.raises(JSONTextError, match=r"^101 bytes is more than the limit of 100 bytes$"):
        parse_json(text + " ", max_bytes=100)
    with pytest.raises(JSONTextError, match=r"^1,048,577 bytes is more than the limit of "):
        parse_json(" " * (1024 * 1024) + "1")
    assert parse_json(" " * (1024 * 1024 - 1) + "1") == 1


@pytest.mark.parametrize("levels", [1, 10, MAX_JSON_DEPTH])
def test_nesting_up_to_the_limit_is_parsed(levels: int) -> None:
    assert json_depth(nested(levels), MAX_JSON_DEPTH) == levels
    value: Any = parse_json(nested(levels))
    for _ in range(levels - 1):
        value = value[0]
    assert value == []


def test_depth_ignores_brackets_inside_strings_and_stops_past_the_limit() -> None:
    text = '["[[[[", {"k": "]]]}{{"}, "\\"[["]'
    assert json_depth(text, 1) == 2
    assert json_depth(nested(1000), 10) == 11
    assert parse_json('["' + "[" * 500 + '"]') == ["[" * 500]


def test_a_depth_error_is_its_own_kind() -> None:
    with pytest.raises(JSONDepthError):
        parse_json(nested(10), max_depth=9)


def test_no_recursion_limit_is_reached_even_when_set_low() -> None:
    """The depth is measured iteratively: even a stack nearly full parses or refuses."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        with pytest.raises(JSONDepthError):
            parse_json(nested(1_000_000), max_bytes=None)
    finally:
        sys.setrecursionlimit(previous)


@pytest.fixture
def unlimited_int_digits() -> Iterator[None]:
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    yield
    sys.set_int_max_str_digits(previous)


@pytest.mark.usefixtures("unlimited_int_digits")
def test_long_integers_are_refused_whatever_the_process_allows() -> None:
    assert parse_json("9" * MAX_INTEGER_DIGITS) == int("9" * MAX_INTEGER_DIGITS)
    with pytest.raises(JSONTextError, match="longer than the limit"):
        parse_json("-" + "9" * (MAX_INTEGER_DIGITS + 1))


def test_strict_parsing_keeps_what_json_keeps() -> None:
    text = '\ufeff{"a": [1, -2.5e3, "\\u00e9\\ud83d\\ude00", true, null], "b": {}, "\\\\ud800": 0}'
    assert parse_json(text) == {"a": [1, -2500.0, "é😀", True, None], "b": {}, "\\ud800": 0}


# -- properties -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(st.characters(exclude_categories=("Cs",))), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(value=JSON_VALUES, ensure_ascii=st.booleans(), indent=st.none() | st.integers(0, 2))
def test_any_json_value_round_trips(value: Any, ensure_ascii: bool, indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    if json_depth(text, MAX_JSON_DEPTH) <= MAX_JSON_DEPTH:
        assert parse_json(text, max_bytes=None) == value
        assert parse_json(text.encode(), max_bytes=None) == value


JSONISH = st.text(alphabet=st.sampled_from('{}[]":,\\ \n0123456789.eE+-truefalsnNaINfiy\x00é'))


@settings(max_examples=1000)
@given(text=JSONISH | st.text() | st.binary())
def test_any_text_gives_a_value_or_a_json_text_error(text: str | bytes) -> None:
    try:
        parse_json(text, max_bytes=10_000, max_depth=8)
    except JSONTextError as exc:
        message = str(exc)
    else:
        message = "parsed"
    assert message, "a refusal says why"
