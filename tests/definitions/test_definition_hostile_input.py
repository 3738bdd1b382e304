"""Hostile definition files: each is refused with one clear problem naming file and line, in
bounded time, never a traceback; a large honest definition loads quickly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sagas import DefinitionError, load_definition, parse_definition
from sagas.definitions.validate import MAX_PROBLEMS
from sagas.definitions.yamltext import MAX_DEFINITION_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES

HEADER = "name: s\ntrigger: Started\ncorrelation: id\n"
ONE_STEP = "steps:\n  - name: approve\n    wait: {event: Approved}\n"

# Nine levels of nine aliases: about a kilobyte that stands for 9**9 values.
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def within(seconds: float, load: Callable[[], Any]) -> BaseException | Any:
    """What ``load`` returned or raised, failing the test when it takes longer than ``seconds``
    (in a thread, so a hang fails the test rather than the run)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(load())
        except BaseException as exc:  # the test looks at it
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still loading after {seconds} s")
    return outcome[0]


def problems_of(file: Path) -> list[str]:
    outcome = within(20, lambda: load_definition(file))
    assert isinstance(outcome, DefinitionError), outcome
    return [str(problem) for problem in outcome.problems]


def write(tmp_path: Path, content: str | bytes, name: str = "saga.yaml") -> Path:
    file = tmp_path / name
    if isinstance(content, str):
        file.write_text(content, encoding="utf-8")
    else:
        file.write_bytes(content)
    return file


def test_billion_laughs_is_refused_at_the_line_where_aliases_blow_up(tmp_path: Path) -> None:
    file = write(tmp_path, BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 1100
    assert problems_of(file) == [
        f"{file}:6: (yaml): too large: aliases expand it to more than {MAX_YAML_VALUES:,} values"
    ]


def test_aliases_that_stay_small_are_still_allowed(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        HEADER
        + "steps:\n"
        + "  - name: a\n    handler: a\n    retry: &retry {attempts: 3, initial_delay: 1s}\n"
        + "    compensation: {handler: undo}\n"
        + "  - name: b\n    handler: b\n    retry: *retry\n    pivot: true\n",
    )
    definition = load_definition(file)
    assert definition.step("b").retry == definition.step("a").retry
    assert definition.step("b").retry.attempts == 3


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    file = write(tmp_path, HEADER + ONE_STEP + "description: &loop\n  - [*loop]\n")
    assert problems_of(file) == [f"{file}:7: (yaml): an alias refers to its own anchor"]


def flow_nesting(depth: int) -> str:
    return "[" * depth + "]" * depth


def block_nesting(depth: int) -> str:
    # One more space per level: the text grows with the square of the depth.
    return "".join(f"\n{' ' * (level + 1)}k:" for level in range(depth)) + " 1"


@pytest.mark.parametrize(
    ("nesting", "depth"),
    [
        (flow_nesting, MAX_YAML_DEPTH + 1),
        (flow_nesting, 5_000),  # past libyaml's own bound of 1,000 levels
        (flow_nesting, 400_000),
        (block_nesting, MAX_YAML_DEPTH + 1),
        (block_nesting, 900),
        (block_nesting, 1_400),
    ],
    ids=["flow-65", "flow-5000", "flow-400000", "block-65", "block-900", "block-1400"],
)
def test_deep_nesting_is_refused_without_a_recursion_error(
    tmp_path: Path, nesting: Callable[[int], str], depth: int
) -> None:
    text = HEADER + ONE_STEP + "description: " + nesting(depth) + "\n"
    assert len(text) <= MAX_DEFINITION_BYTES
    [problem] = problems_of(write(tmp_path, text))
    assert problem.startswith(f"{tmp_path / 'saga.yaml'}:")
    assert problem.endswith(f": (yaml): nested more than {MAX_YAML_DEPTH} levels deep")


def test_nesting_up_to_the_limit_is_fine_for_yaml(tmp_path: Path) -> None:
    # The data stays in the YAML reader's bounds; it is the model that refuses the field.
    depth = MAX_YAML_DEPTH - 2
    text = HEADER + ONE_STEP + "description: " + flow_nesting(depth) + "\n"
    assert problems_of(write(tmp_path, text)) == [
        f"{tmp_path / 'saga.yaml'}:7: description: must be a valid string"
    ]


def test_a_file_larger_than_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    text = HEADER + ONE_STEP + "# " + "x" * MAX_DEFINITION_BYTES + "\n"
    file = write(tmp_path, text)
    assert problems_of(file) == [
        f"{file}: (file): larger than {MAX_DEFINITION_BYTES:,} bytes; a definition file is smaller"
    ]


def test_a_text_larger_than_the_limit_is_refused_before_parsing() -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition("[" * (MAX_DEFINITION_BYTES + 1), "big.yaml")
    assert [str(p) for p in raised.value.problems] == [
        f"big.yaml: (yaml): larger than {MAX_DEFINITION_BYTES:,} bytes; a definition is smaller"
    ]


def test_a_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    text = HEADER + ONE_STEP
    text += "#" * (MAX_DEFINITION_BYTES - len(text) - 1) + "\n"
    file = write(tmp_path, text)
    assert file.stat().st_size == MAX_DEFINITION_BYTES
    assert load_definition(file).name == "s"


def test_a_file_holding_too_many_values_is_refused(tmp_path: Path) -> None:
    text = HEADER + ONE_STEP + "description: [" + ",".join(["a"] * MAX_YAML_VALUES) + "]\n"
    assert len(text) <= MAX_DEFINITION_BYTES
    assert problems_of(write(tmp_path, text)) == [
        f"{tmp_path / 'saga.yaml'}:7: (yaml): too large: it holds more than "
        f"{MAX_YAML_VALUES:,} values"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            HEADER.encode() + b"description: caf\xe9\n" + ONE_STEP.encode(),
            "4: (file): not UTF-8 text: byte 0xe9 at column 17 (save the file as UTF-8)",
        ),
        (
            HEADER.encode() + "description: ü ".encode() + b"\xff\n" + ONE_STEP.encode(),
            "4: (file): not UTF-8 text: byte 0xff at column 16 (save the file as UTF-8)",
        ),
        (
            "\ufeff".encode("utf-16-le") + HEADER.encode("utf-16-le"),
            "1: (file): not UTF-8 text: byte 0xff at column 1 (save the file as UTF-8)",
        ),
        (
            HEADER.encode() + b"description: a\x00b\n" + ONE_STEP.encode(),
            "4: (yaml): character 0x0000 is not allowed in YAML",
        ),
        (
            HEADER.encode() + b"description: \x1b[31mred\n" + ONE_STEP.encode(),
            "4: (yaml): character 0x001b is not allowed in YAML",
        ),
        (
            b"\x00" * 4096,
            "1: (yaml): character 0x0000 is not allowed in YAML",
        ),
    ],
    ids=["latin-1", "after-a-wide-character", "utf-16", "nul", "escape", "only-nul"],
)
def test_bytes_that_are_not_yaml_text_are_refused_with_their_line(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    file = write(tmp_path, content)
    assert problems_of(file) == [f"{file}:{expected}"]


def test_a_lone_surrogate_in_text_is_refused() -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(HEADER + "description: \ud800\n" + ONE_STEP, "s.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "s.yaml:4: (yaml): character U+D800 (a lone surrogate) is not text"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("!!timestamp 2020-99-99", "cannot read '2020-99-99' as tag:yaml.org,2002:timestamp"),
        ("!!timestamp 2020-01-01x", "cannot read '2020-01-01x' as tag:yaml.org,2002:timestamp"),
        ("!!int 0x", "cannot read '0x' as tag:yaml.org,2002:int"),
        ("!!binary A", "failed to decode base64 data"),
        ("!!omap [1]", "expected a mapping of length 1, but found scalar"),
        ("!!python/name:os.system", "could not determine a constructor for the tag"),
    ],
)
def test_a_tagged_value_that_cannot_be_built_is_a_problem_at_its_line(
    value: str, expected: str
) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(HEADER + f"description: {value}\n" + ONE_STEP, "s.yaml")
    [problem] = raised.value.problems
    assert (problem.line, problem.field) == (4, "(yaml)")
    assert expected in problem.message


def test_thousands_of_problems_are_counted_not_all_listed() -> None:
    text = HEADER + "steps: [" + ", ".join(["oops"] * 5_000) + "]\n"
    outcome = within(20, lambda: parse_definition(text, "s.yaml"))
    assert isinstance(outcome, DefinitionError), outcome
    problems = outcome.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert str(problems[0]) == "s.yaml:4: steps[0]: must be a mapping of fields"
    assert str(problems[-1]) == (
        f"s.yaml:1: (definition): and {5_000 - MAX_PROBLEMS:,} more problems not shown"
    )


def test_thousands_of_duplicate_keys_are_bounded_too() -> None:
    text = HEADER + ONE_STEP + "events:\n" + "  E: {}\n" * 5_000
    outcome = within(20, lambda: parse_definition(text, "s.yaml"))
    assert isinstance(outcome, DefinitionError), outcome
    duplicates = [p for p in outcome.problems if p.message.startswith("duplicate key")]
    assert len(duplicates) == MAX_PROBLEMS
    assert {p.field for p in duplicates} == {"events.E"}


def big_definition(steps: int) -> str:
    lines = [HEADER.rstrip("\n"), "steps:"]
    for i in range(steps):
        lines += [
            f"  - name: step{i}",
            f"    command: {{type: Do{i}, data: {{id: id}}, success: Done{i}, failure: Failed{i}}}",
            "    timeout: 30s",
            "    retry: {attempts: 3, initial_delay: 1s}",
            f"    compensation: {{handler: undo{i}}}",
        ]
        if i:
            lines.append(f"    after: [step{i - 1}]")
    return "\n".join(lines) + "\n"


def test_a_definition_of_500_steps_loads_quickly(tmp_path: Path) -> None:
    file = write(tmp_path, big_definition(500))
    load_definition(file)  # imports and caches warmed
    started = time.perf_counter()
    definition = load_definition(file)
    elapsed = time.perf_counter() - started
    assert len(definition.steps) == 500
    # About 0.07 s on the project's machine (0.39 s before libyaml and the bounded walk);
    # the bound leaves room for a loaded CI machine.
    assert elapsed < 1.5, f"{elapsed:.2f} s"
