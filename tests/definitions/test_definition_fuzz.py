"""Mutated shipped definitions and random YAML-ish bytes: loading either gives a definition or
a ``DefinitionError`` whose every problem names the file — never another exception, never a
hang. (A bounded run; the issue's full campaign is ``make fuzz``.)"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagas import DefinitionError, Problem, SagaDefinition, load_definition

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [path.read_bytes() for path in sorted((ROOT / "definitions").glob("*.yaml"))]

# Pieces that steer YAML into its corners: anchors and aliases, flow and block nesting, tags,
# merge keys, document markers, bytes that are not UTF-8 or not allowed in YAML.
PIECES = [
    b"&a ",
    b"*a",
    b"&b [*a, *a, *a]",
    b"<<: *a",
    b"[",
    b"]",
    b"{",
    b"}",
    b": ",
    b"- ",
    b"\n  ",
    b"\n",
    b"? ",
    b"!!python/object:os.system ",
    b"!!timestamp 2020-99-99",
    b"!!binary A",
    b"---\n",
    b"...\n",
    b"\x00",
    b"\xff\xfe",
    b"\xe9",
    b"\x1b[31m",
    b"'",
    b'"',
    b"\\",
    b"#",
    b"|\n",
    b">-\n",
    b"\t",
    b"1e999",
    b".nan",
    b"~",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        if kind == "insert":
            data[at:at] = draw(st.sampled_from(PIECES) | st.binary(max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            piece = bytes(data[at : at + draw(st.integers(1, 60))])
            data[at:at] = piece * draw(st.integers(1, 50))
    return bytes(data)


def check(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "fuzzed.yaml"
        file.write_bytes(content)
        problems: tuple[Problem, ...] = ()
        try:
            loaded: SagaDefinition | None = load_definition(file)
        except DefinitionError as exc:
            loaded, problems = None, exc.problems
    if loaded is not None:
        return
    assert problems
    # YAML also breaks lines at \r, NEL, LS and PS; Python's splitlines at those and more.
    last_line = len(content.decode("utf-8", "replace").splitlines()) + 1
    for problem in problems:
        assert problem.source == str(file)
        assert problem.message
        assert problem.line is None or 1 <= problem.line <= last_line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_shipped_definition_loads_or_is_refused_with_problems(content: bytes) -> None:
    check(content)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=3), max_size=80).map(b"".join))
def test_yaml_ish_bytes_load_or_are_refused_with_problems(content: bytes) -> None:
    check(content)
