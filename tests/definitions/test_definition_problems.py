"""Every validation rule has a bad definition under ``bad/``; each is reported exactly, with its
file, line and field, and all problems of a file are reported in one run."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagas import DefinitionError, load_definition, load_definitions
from sagas.cli import cli

ROOT = Path(__file__).resolve().parents[2]
BAD = "tests/definitions/bad"

# Every handler name the bad files use, except `charge_card`: unknown_handler.yaml is about it.
REGISTERED = frozenset(
    {"charge", "ship", "unship", "refund", "reserve", "release", "refund_card", "ship_order"}
)

NO_COMPENSATION = (
    "has no compensation, but a later failure would have to undo it; add a compensation, "
    "or mark it `pivot: true` if it is the point of no return"
)
NOT_A_DURATION = "is not a duration; write e.g. 30s, 5m, 2h, 1d, 1h30m or PT30S"
NAME_RULE = "use only ASCII letters, digits, `_`, `.` or `-`, starting with an ASCII letter or `_`"
EVENT_TYPE_RULE = (
    "use only ASCII letters, digits, `_`, `.`, `:`, `/` or `-`, "
    "starting with an ASCII letter or `_`"
)

EXPECTED: dict[str, list[str]] = {
    "cycle.yaml": [
        "cycle.yaml:7: steps[0].after: steps depend on each other in a cycle: "
        "first -> second -> third -> first",
    ],
    "duplicate_step.yaml": [
        "duplicate_step.yaml:8: steps[1].name: duplicate step name 'approve', first at steps[0]",
    ],
    "unknown_after.yaml": [
        "unknown_after.yaml:9: steps[1].after[1]: unknown step 'aprove'",
    ],
    "unreachable.yaml": [
        "unreachable.yaml:7: steps[0].after: steps depend on each other in a cycle: "
        "ping -> pong -> ping",
        "unreachable.yaml:11: steps[2]: step 'report' is unreachable: "
        "it depends on a cycle of steps",
    ],
    "two_pivots.yaml": [
        "two_pivots.yaml:10: steps[1].pivot: a saga has at most one pivot; 'charge' is one",
    ],
    "pivot_not_on_every_path.yaml": [
        "pivot_not_on_every_path.yaml:11: steps[1].pivot: the pivot must be on every path, "
        "but 'approve' can run in parallel with it",
    ],
    "missing_compensation.yaml": [
        f"missing_compensation.yaml:6: steps[0]: step 'reserve' {NO_COMPENSATION}",
    ],
    "compensation_after_pivot.yaml": [
        "compensation_after_pivot.yaml:11: steps[1].compensation: never runs: "
        "step 'ship' is after the pivot, which is never compensated",
    ],
    "compensation_on_pivot.yaml": [
        "compensation_on_pivot.yaml:9: steps[0].compensation: never runs: "
        "step 'charge' is a pivot, which is never compensated",
    ],
    "unknown_handler.yaml": [
        "unknown_handler.yaml:7: steps[0].handler: no handler is registered as 'charge_card'",
    ],
    "undeclared_event.yaml": [
        "undeclared_event.yaml:12: steps[0].command.failure: "
        "event 'ReservationFailed' is not declared in events",
    ],
    "success_and_failure.yaml": [
        "success_and_failure.yaml:11: steps[0].command.failure: "
        "'ReserveAnswered' cannot be both success and failure",
    ],
    "retry_attempts_zero.yaml": [
        "retry_attempts_zero.yaml:9: steps[0].retry.attempts: must be >= 1",
    ],
    "retry_factor_out_of_range.yaml": [
        "retry_factor_out_of_range.yaml:8: steps[0].retry.factor: must be >= 1.0",
        "retry_factor_out_of_range.yaml:8: steps[0].retry.jitter: must be <= 1.0",
    ],
    "max_delay_shorter.yaml": [
        "max_delay_shorter.yaml:8: steps[0].retry: max_delay must not be shorter than "
        "initial_delay",
    ],
    "bad_duration.yaml": [
        f"bad_duration.yaml:5: deadline: '2 hours' {NOT_A_DURATION}",
    ],
    "negative_duration.yaml": [
        "negative_duration.yaml:7: steps[0].delay: a duration cannot be negative",
    ],
    "zero_timeout.yaml": [
        "zero_timeout.yaml:6: steps[0]: timeout must be longer than 0s",
    ],
    "delay_with_timeout.yaml": [
        "delay_with_timeout.yaml:6: steps[0]: a delay has no timeout or retry",
    ],
    "delay_with_retry.yaml": [
        "delay_with_retry.yaml:6: steps[0]: a delay has no timeout or retry",
    ],
    "bad_expression.yaml": [
        "bad_expression.yaml:4: correlation: invalid expression 'order.[id': "
        "the expression ends too early at column 10",
    ],
    "unknown_function.yaml": [
        "unknown_function.yaml:7: steps[0].when: invalid expression "
        "\"__import__('os').system('rm -rf /')\": unknown function __import__(), system()",
    ],
    "unknown_field.yaml": [
        "unknown_field.yaml:8: steps[0].timout: unknown field (did you mean 'timeout'?)",
    ],
    "field_not_allowed_here.yaml": [
        "field_not_allowed_here.yaml:10: steps[0].compensation.pivot: is not allowed here",
    ],
    "two_actions.yaml": [
        "two_actions.yaml:6: steps[0]: needs exactly one of handler, command, wait, delay "
        "(found: handler, command)",
    ],
    "no_action.yaml": [
        "no_action.yaml:6: steps[0]: needs exactly one of handler, command, wait, delay "
        "(found: none)",
    ],
    "compensation_without_action.yaml": [
        "compensation_without_action.yaml:8: steps[0].compensation: needs exactly one of "
        "handler, command, wait, delay (found: none)",
    ],
    "missing_trigger.yaml": [
        "missing_trigger.yaml:2: trigger: is required",
    ],
    "no_steps.yaml": [
        "no_steps.yaml:5: steps: needs at least 1 item",
    ],
    "steps_not_a_list.yaml": [
        "steps_not_a_list.yaml:5: steps: must be a list",
    ],
    "wrong_type.yaml": [
        "wrong_type.yaml:3: version: must be a valid integer, unable to parse string as an integer",
    ],
    "bad_name.yaml": [
        f"bad_name.yaml:2: name: '2nd saga' is not a valid name: {NAME_RULE}",
    ],
    "bad_event_type.yaml": [
        "bad_event_type.yaml:3: trigger: 'Order Created' is not a valid event type: "
        f"{EVENT_TYPE_RULE}",
    ],
    "duplicate_key.yaml": [
        "duplicate_key.yaml:9: steps[0].timeout: duplicate key; YAML keeps only the last one",
    ],
    "yaml_syntax.yaml": [
        "yaml_syntax.yaml:8: (yaml): while parsing a flow mapping started on line 7: "
        "expected ',' or '}', but got ':'",
    ],
    "unsafe_tag.yaml": [
        "unsafe_tag.yaml:2: (yaml): could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ],
    "not_a_mapping.yaml": [
        "not_a_mapping.yaml:2: (definition): a saga definition must be a mapping of fields",
    ],
    "empty.yaml": [
        "empty.yaml: (definition): empty; a saga definition is a mapping of fields",
    ],
    "several_problems.yaml": [
        "several_problems.yaml:3: version: must be >= 1",
        f"several_problems.yaml:7: steps[0]: step 'reserve' {NO_COMPENSATION}",
        "several_problems.yaml:9: steps[0].retry.attempts: must be >= 1",
        "several_problems.yaml:10: steps[1].name: duplicate step name 'reserve', first at steps[0]",
        f"several_problems.yaml:11: steps[1].delay: 'soon' {NOT_A_DURATION}",
        f"several_problems.yaml:12: steps[2]: step 'ship' {NO_COMPENSATION}",
        "several_problems.yaml:13: steps[2].after[0]: unknown step 'pack'",
        "several_problems.yaml:15: steps[2].timout: unknown field (did you mean 'timeout'?)",
    ],
}


def expected_lines(file: str) -> list[str]:
    return [f"{BAD}/{line}" for line in EXPECTED[file]]


@pytest.fixture
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Problems name files as given; the expectations use paths from the repository root."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module whose ``handlers`` registry holds every name in REGISTERED."""
    name = "bad_definitions_handlers"
    (tmp_path / f"{name}.py").write_text(
        "from sagas import HandlerRegistry\n"
        "handlers = HandlerRegistry()\n"
        f"for name in {sorted(REGISTERED)!r}:\n"
        "    handlers.register(lambda context: None, name)\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_every_bad_file_has_its_expected_problems() -> None:
    on_disk = {path.name for path in (ROOT / BAD).glob("*.yaml")}
    assert on_disk == set(EXPECTED)


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_bad_definition_is_reported_with_file_line_and_field(file: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        load_definition(f"{BAD}/{file}", handlers=REGISTERED)
    assert [str(problem) for problem in raised.value.problems] == expected_lines(file)


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_bad_definition_message_counts_and_lists_every_problem(file: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        load_definition(f"{BAD}/{file}", handlers=REGISTERED)
    count = len(EXPECTED[file])
    header = f"invalid saga definition ({count} problem{'s' if count != 1 else ''})"
    assert str(raised.value).splitlines() == [
        header,
        *(f"  {line}" for line in expected_lines(file)),
    ]


@pytest.mark.usefixtures("in_repo_root")
def test_a_file_with_several_problems_reports_them_all_in_one_run() -> None:
    with pytest.raises(DefinitionError) as raised:
        load_definition(f"{BAD}/several_problems.yaml")
    problems = raised.value.problems
    assert len(problems) == 8
    assert {problem.field for problem in problems} >= {
        "version",
        "steps[0].retry.attempts",
        "steps[1].name",
        "steps[1].delay",
        "steps[2].after[0]",
        "steps[2].timout",
    }
    assert [problem.line for problem in problems] == sorted(
        problem.line or 0 for problem in problems
    )


@pytest.mark.usefixtures("in_repo_root")
def test_handlers_are_checked_only_when_the_registry_is_known() -> None:
    definition = load_definition(f"{BAD}/unknown_handler.yaml")
    assert definition.step("charge").handler == "charge_card"


@pytest.mark.usefixtures("in_repo_root")
def test_an_unregistered_compensation_handler_is_reported_too() -> None:
    with pytest.raises(DefinitionError) as raised:
        load_definition(f"{BAD}/unknown_handler.yaml", handlers={"charge_card", "ship_order"})
    assert [str(problem) for problem in raised.value.problems] == [
        f"{BAD}/unknown_handler.yaml:8: steps[0].compensation.handler: "
        "no handler is registered as 'refund_card'",
    ]


@pytest.mark.usefixtures("in_repo_root")
def test_loading_a_folder_reports_the_problems_of_every_file_together() -> None:
    with pytest.raises(DefinitionError) as raised:
        load_definitions([BAD], handlers=REGISTERED)
    expected = [line for file in sorted(EXPECTED) for line in expected_lines(file)]
    assert [str(problem) for problem in raised.value.problems] == expected


@pytest.mark.usefixtures("in_repo_root")
@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_cli_validate_prints_exactly_the_problems_of_a_bad_file(
    file: str, handler_module: str
) -> None:
    result = CliRunner().invoke(cli, ["validate", "--handlers", handler_module, f"{BAD}/{file}"])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == expected_lines(file)


@pytest.mark.usefixtures("in_repo_root")
def test_cli_validate_of_the_bad_folder_prints_every_problem_line_and_fails(
    handler_module: str,
) -> None:
    result = CliRunner().invoke(cli, ["validate", "--handlers", handler_module, BAD])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        line for file in sorted(EXPECTED) for line in expected_lines(file)
    ]


def broken_order_saga(tmp_path: Path, replacements: dict[str, str]) -> str:
    """A copy of the shipped order saga with lines replaced; returns its text."""
    text = (ROOT / "definitions" / "order_fulfillment.yaml").read_text(encoding="utf-8")
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "definitions").mkdir()
    (tmp_path / "definitions" / "order_fulfillment.yaml").write_text(text, encoding="utf-8")
    return text


def line_number(text: str, line: str) -> int:
    return text.splitlines().index(line) + 1


def test_broken_order_saga_names_file_line_and_field_like_the_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = broken_order_saga(tmp_path, {"    retry: {attempts: 2}": "    retry: {attempts: 0}"})
    monkeypatch.chdir(tmp_path)
    line = line_number(text, "    retry: {attempts: 0}")
    with pytest.raises(DefinitionError) as raised:
        load_definition("definitions/order_fulfillment.yaml")
    assert [str(problem) for problem in raised.value.problems] == [
        f"definitions/order_fulfillment.yaml:{line}: steps[1].retry.attempts: must be >= 1"
    ]


def test_broken_order_saga_reports_every_problem_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = broken_order_saga(
        tmp_path,
        {
            "    retry: {attempts: 2}": "    retry: {attempts: 0}",
            "    timeout: 5m": "    timeout: 5 minutes",
            "      success: OrderShipped": "      success: OrderShiped",
        },
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "definitions/"])
    assert result.exit_code == 1
    file = "definitions/order_fulfillment.yaml"
    assert result.stdout.splitlines() == [
        f"{file}:{line_number(text, '    retry: {attempts: 0}')}: "
        "steps[1].retry.attempts: must be >= 1",
        f"{file}:{line_number(text, '      success: OrderShiped')}: "
        "steps[2].command.success: event 'OrderShiped' is not declared in events",
        f"{file}:{line_number(text, '    timeout: 5 minutes')}: "
        f"steps[2].timeout: '5 minutes' {NOT_A_DURATION}",
    ]
