"""Any valid saga definition survives YAML: dump, parse, and get the same model and text back."""

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagas import (
    Command,
    Compensation,
    EventSpec,
    RetryPolicy,
    SagaDefinition,
    Step,
    Wait,
    load_definition,
    parse_definition,
)
from sagas.definitions import dump_definition

ROOT = Path(__file__).resolve().parents[2]

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True)
event_types = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,12}", fullmatch=True)
fields = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
expressions = st.one_of(
    fields,
    st.builds(lambda a, b: f"{a}.{b}", fields, fields),
    st.sampled_from(
        [
            "items[0].sku",
            "items[?qty > `1`].sku",
            "{id: id, total: sum(items[].price)}",
            "total > `100`",
            "car != null",
            "a || b",
            '`"literal"`',
            'customer."first name"',
            "length(items) > `0` && !cancelled",
        ]
    ),
)
texts = st.text(max_size=20)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))
positive_durations = st.timedeltas(
    min_value=timedelta(microseconds=1), max_value=timedelta(days=30)
)


@st.composite
def retry_policies(draw: st.DrawFn) -> RetryPolicy:
    if draw(st.booleans()):
        return RetryPolicy()
    initial = draw(durations)
    return RetryPolicy(
        attempts=draw(st.integers(1, 100)),
        initial_delay=initial,
        factor=draw(st.floats(1.0, 100.0)),
        max_delay=initial + draw(durations),
        jitter=draw(st.floats(0.0, 1.0)),
    )


@st.composite
def replies(draw: st.DrawFn) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Success and failure event types, apart: no reply type can mean both."""
    both = draw(st.lists(event_types, unique=True, max_size=4))
    cut = draw(st.integers(0, len(both)))
    return tuple(both[:cut]), tuple(both[cut:])


@st.composite
def actions(draw: st.DrawFn, kind: str) -> dict[str, object]:
    """The action fields of a step or a compensation, with a timeout where one is allowed."""
    if kind == "delay":
        return {"delay": draw(durations)}
    fields: dict[str, object] = {
        "timeout": draw(st.none() | positive_durations),
        "retry": draw(retry_policies()),
    }
    if kind == "handler":
        fields["handler"] = draw(names)
    elif kind == "command":
        success, failure = draw(replies())
        failure = failure if success else ()  # failure replies need success replies
        data = draw(st.none() | st.dictionaries(texts, expressions, max_size=3))
        fields["command"] = Command(
            type=draw(event_types), data=data, success=success, failure=failure
        )
    else:
        events, failure = draw(replies().filter(lambda reply: bool(reply[0])))
        correlation = draw(st.none() | expressions)
        fields["wait"] = Wait(event=events, failure=failure, correlation=correlation)
    return fields


kinds = st.sampled_from(["handler", "command", "wait", "delay"])


@st.composite
def compensations(draw: st.DrawFn) -> Compensation:
    return Compensation(**draw(actions(draw(kinds))))


@st.composite
def steps(
    draw: st.DrawFn,
    name: str,
    after: tuple[str, ...] | None,
    *,
    pivot: bool = False,
    undone: bool = True,
) -> Step:
    """A step; ``undone``: a later failure would undo it, so handlers and commands need a
    compensation (the pivot and the steps after it are never undone, so they have none)."""
    kind = draw(kinds)
    needs_compensation = undone and not pivot and kind in ("handler", "command")
    may_have_compensation = undone and not pivot
    compensation = None
    if needs_compensation or (may_have_compensation and draw(st.booleans())):
        compensation = draw(compensations())
    return Step(
        name=name,
        description=draw(texts),
        after=after,
        when=draw(st.none() | expressions),
        pivot=pivot,
        compensation=compensation,
        **draw(actions(kind)),
    )


def event_types_of(definition: SagaDefinition) -> set[str]:
    found = {definition.trigger}
    for step in definition.steps:
        for spec in (step, step.compensation):
            if spec is None:
                continue
            if spec.command is not None:
                found |= {spec.command.type, *spec.command.success, *spec.command.failure}
            if spec.wait is not None:
                found |= {*spec.wait.event, *spec.wait.failure}
    return found


@st.composite
def definitions(draw: st.DrawFn) -> SagaDefinition:
    """A valid saga: steps in a DAG (each step after earlier ones), optionally a pivot that all
    earlier steps lead to, followed by a sequence of steps that are never undone."""
    before, after_pivot = draw(st.integers(1, 5)), draw(st.integers(0, 2))
    has_pivot = draw(st.booleans())
    total = before + (1 + after_pivot if has_pivot else 0)
    step_names = draw(st.lists(names, min_size=total, max_size=total, unique=True))
    built: list[Step] = []
    for index in range(before):
        earlier = step_names[:index]
        after = (
            draw(st.none() | st.lists(st.sampled_from(earlier), unique=True).map(tuple))
            if earlier
            else draw(st.none() | st.just(()))
        )
        built.append(draw(steps(step_names[index], after)))
    if has_pivot:
        dependencies = {name for step in built for name in step_dependencies(built, step)}
        sinks = tuple(step.name for step in built if step.name not in dependencies)
        after = None if sinks == (built[-1].name,) and draw(st.booleans()) else sinks
        built.append(draw(steps(step_names[before], after, pivot=True)))
        for name in step_names[before + 1 :]:
            built.append(draw(steps(name, None, undone=False)))
    definition = SagaDefinition(
        name=draw(names),
        version=draw(st.integers(1, 1000)),
        description=draw(texts),
        trigger=draw(event_types),
        correlation=draw(expressions),
        deadline=draw(st.none() | durations),
        steps=tuple(built),
    )
    if draw(st.booleans()):
        # Declare every event type the saga names, and maybe a few it does not.
        declared = event_types_of(definition) | set(draw(st.lists(event_types, max_size=2)))
        events = {event: EventSpec(description=draw(texts)) for event in sorted(declared)}
        definition = SagaDefinition(**{**dict(definition), "events": events})
    return definition


def step_dependencies(built: list[Step], step: Step) -> tuple[str, ...]:
    if step.after is not None:
        return step.after
    index = built.index(step)
    return (built[index - 1].name,) if index else ()


@settings(max_examples=100, deadline=None)
@given(definitions())
def test_a_valid_definition_dumps_to_yaml_that_parses_back_equal(
    definition: SagaDefinition,
) -> None:
    text = dump_definition(definition)
    parsed = parse_definition(text, "roundtrip.yaml")
    assert parsed == definition
    assert dump_definition(parsed) == text


@pytest.mark.parametrize("file", ["order_fulfillment.yaml", "travel_booking.yaml"])
def test_a_shipped_definition_dumps_to_yaml_that_parses_back_equal(file: str) -> None:
    definition = load_definition(ROOT / "definitions" / file)
    text = dump_definition(definition)
    assert parse_definition(text) == definition
    assert text.startswith(f"name: {definition.name}\n")
