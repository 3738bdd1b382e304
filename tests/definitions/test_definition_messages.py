"""Names and event types that break their rule are refused with the rule in words — ASCII
letters, not any letter — wherever they come in: definition files (with file:line) and events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sagas import DefinitionError, parse_definition
from sagas.definitions.model import EVENT_TYPE_RULE, NAME_RULE
from sagas.events import Event, EventError

T0 = datetime(2026, 12, 2, tzinfo=UTC)
NOT_A_NAME = f"is not a valid name: use only {NAME_RULE}"
NOT_AN_EVENT_TYPE = f"is not a valid event type: use only {EVENT_TYPE_RULE}"

DEFINITION = """\
name: {name}
trigger: {trigger}
correlation: id
steps:
  - name: {step}
    handler: {handler}
    pivot: true
"""


def problems(**fields: str) -> list[str]:
    values = {"name": "s", "trigger": "Started", "step": "ship", "handler": "ship"} | fields
    text = DEFINITION.format(**{key: json.dumps(value) for key, value in values.items()})
    with pytest.raises(DefinitionError) as raised:
        parse_definition(text, "saga.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_the_rules_name_ascii_letters_in_words() -> None:
    assert NAME_RULE == (
        "ASCII letters, digits, `_`, `.` or `-`, starting with an ASCII letter or `_`"
    )
    assert EVENT_TYPE_RULE == (
        "ASCII letters, digits, `_`, `.`, `:`, `/` or `-`, starting with an ASCII letter or `_`"
    )


@pytest.mark.parametrize(
    ("field", "value", "line", "path"),
    [
        ("name", "Bestellung_für_Kunden", 1, "name"),  # a letter, but not an ASCII one
        ("name", "-leading-dash", 1, "name"),
        ("step", "2nd", 5, "steps[0].name"),
        ("step", "ship it", 5, "steps[0].name"),
        ("handler", "ship()", 6, "steps[0].handler"),
        ("handler", "ship\u0660", 6, "steps[0].handler"),  # an Arabic-Indic digit
    ],
)
def test_a_name_that_breaks_the_rule_is_refused_with_the_rule_and_its_line(
    field: str, value: str, line: int, path: str
) -> None:
    assert problems(**{field: value}) == [f"saga.yaml:{line}: {path}: {value!r} {NOT_A_NAME}"]


@pytest.mark.parametrize("trigger", ["Order Created", "Café", "1Started", "a\x1b[31m", "é"])
def test_an_event_type_that_breaks_the_rule_is_refused_with_the_rule_and_its_line(
    trigger: str,
) -> None:
    assert problems(trigger=trigger) == [f"saga.yaml:2: trigger: {trigger!r} {NOT_AN_EVENT_TYPE}"]


def test_a_long_bad_value_is_shortened_and_a_too_long_one_says_how_long() -> None:
    value = "x y" * 30
    assert problems(step=value) == [f"saga.yaml:5: steps[0].name: {value[:57]!r}… {NOT_A_NAME}"]
    assert problems(step="x" * 201) == [
        "saga.yaml:5: steps[0].name: must be at most 200 characters"
    ]


@pytest.mark.parametrize("event_type", ["Order Created", "Bestellung.für", "9Lives", ""])
def test_an_event_with_a_bad_type_is_refused_with_the_rule_on_every_path(
    event_type: str,
) -> None:
    expected = f"{event_type!r} {NOT_AN_EVENT_TYPE}"
    with pytest.raises(EventError) as created:
        Event.create(event_type, {}, at=T0, event_id="e-1")
    assert str(created.value) == f"event 'e-1': event_type: {expected}"

    wire = {"eventId": "e-2", "eventType": event_type, "timestamp": T0.isoformat(), "data": {}}
    with pytest.raises(EventError) as parsed:
        Event.from_json(json.dumps(wire))
    assert str(parsed.value) == f"event 'e-2': eventType: {expected}"
    with pytest.raises(EventError) as validated:
        Event.from_dict(wire)
    assert str(validated.value) == f"event 'e-2': eventType: {expected}"
