"""Fuzzing saga definitions: documents generated from the JSON Schema and mutated variants of
the shipped files, each fed through the real loader.

Every outcome must be a valid definition or a :class:`~sagas.DefinitionError` whose every
problem names the source (the file) and a line; anything else raised is a crash. A sample of
the mutants also goes through ``sagas validate`` (in process, and a few in a real process),
which must print problems, never a traceback, and still report the good file beside a bad one.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from fuzz.mutate import mutate_yaml
from fuzz.outcomes import Tally
from fuzz.schema_strategy import definition_documents
from sagas.cli import cli
from sagas.definitions import dump_definition, load_definition, parse_definition
from sagas.errors import DefinitionError

__all__ = ["SHIPPED", "fuzz_generated", "fuzz_mutants"]

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "definitions").glob("*.yaml"))
SAGAS = Path(sys.executable).parent / "sagas"


def check_problems(
    tally: Tally, path: str, error: DefinitionError, source: str, data: bytes
) -> None:
    """Every problem names ``source`` and a line (a file too large is one whole-file problem)."""
    if not error.problems:
        tally.finding(path, "DefinitionError without a problem", data)
    for problem in error.problems:
        text = str(problem)
        if problem.source != source or not text.startswith(source):
            tally.finding(path, f"problem not naming {source}: {text}", data)
        elif problem.line is None and not _whole_file(problem.field, problem.message):
            tally.finding(path, f"problem without a line: {text}", data)


def _whole_file(field: str, message: str) -> bool:
    """A problem of the whole file, which has no line: too large, or no document at all."""
    return (field == "(file)" and "larger than" in message) or (
        field == "(definition)" and message.startswith("empty")
    )


def _kind(error: DefinitionError) -> str:
    """The first problem's field (indices left out) and the start of its message."""
    first = error.problems[0] if error.problems else None
    if first is None:
        return "refused: no problem"
    field = re.sub(r"\[[0-9]+\]", "[]", first.field)
    field = re.sub(r"^(events|steps\[\])\.[^.\[]+", r"\1.*", field)
    message = re.split(r"['\"0-9(]", first.message, maxsplit=1)[0].strip()
    return f"refused: {field[:24]}: {message[:34]}"


def _as_text(document: Any, number: int) -> str:
    # Both forms a user writes: block YAML, and JSON (which YAML reads too).
    if number % 2:
        return json.dumps(document, ensure_ascii=bool(number % 4 == 1))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _parse(tally: Tally, path: str, text: str, source: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    try:
        definition = parse_definition(text, source)
    except DefinitionError as exc:
        tally.count(path, _kind(exc))
        check_problems(tally, path, exc, source, data)
        return
    except Exception as exc:
        tally.crash(path, exc, data)
        return
    tally.count(path, "valid")
    try:  # a valid definition reads back equal from its own YAML
        again = parse_definition(dump_definition(definition), source)
    except Exception as exc:
        tally.crash("dump_definition round trip", exc, data)
        return
    if again != definition:
        tally.crash("dump_definition round trip", "reads back different", data)


def fuzz_generated(count: int, *, seed: int = 0, workdir: Path | None = None) -> Tally:
    """``count`` documents generated from the schema through :func:`parse_definition`; every
    50th also written to a file and read with :func:`load_definition`."""
    tally = Tally("definitions generated from the JSON Schema", unit="documents")
    strategy = definition_documents()
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        file = Path(folder) / "generated.yaml"

        @hypothesis_seed(seed)
        @settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def feed(document: Any) -> None:
            number = tally.inputs
            tally.inputs += 1
            if number % 2 == 0 and isinstance(document, dict):
                # Half the documents get a valid correlation expression, so that validation
                # goes on past it (a random string rarely is one).
                document["correlation"] = "orderId"
            text = _as_text(document, number // 2)
            _parse(tally, "parse_definition", text, f"generated-{number}.yaml")
            if number % 50 == 0:
                _load(tally, "load_definition", file, text.encode("utf-8", "surrogatepass"))

        feed()
    tally.stop()
    return tally


def _load(tally: Tally, path: str, file: Path, data: bytes) -> str:
    file.write_bytes(data)
    try:
        load_definition(file)
    except DefinitionError as exc:
        tally.count(path, _kind(exc))
        check_problems(tally, path, exc, str(file), data)
        return "refused"
    except Exception as exc:
        tally.crash(path, exc, data)
        return "crash"
    tally.count(path, "valid")
    return "valid"


def fuzz_mutants(
    count: int,
    *,
    seed: int = 0,
    cli_every: int = 100,
    processes: int = 10,
    workdir: Path | None = None,
) -> Tally:
    """``count`` mutants of the shipped definition files through :func:`load_definition`;
    every ``cli_every``-th also through ``sagas validate`` in process (beside a good file),
    and ``processes`` of them through ``sagas validate`` in a real process."""
    tally = Tally("definitions mutated from the shipped files", unit="files")
    rng = random.Random(seed)
    shipped = [file.read_bytes() for file in SHIPPED]
    runner = CliRunner()
    real = set(rng.sample(range(count), min(processes, count)))
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        file = Path(folder) / "mutant.yaml"
        for number in range(count):
            data, names = mutate_yaml(rng, rng.choice(shipped))
            tally.inputs += 1
            outcome = _load(tally, "load_definition", file, data)
            tally.count(
                "mutations applied",
                "+".join(sorted(set(names)))[:40] if len(names) == 1 else "several",
            )
            if number % cli_every == 0:
                _validate_in_process(tally, runner, file, outcome, data)
            if number in real:
                _validate_in_a_process(tally, file, outcome, data)
    tally.stop()
    return tally


def _validate_in_process(
    tally: Tally, runner: CliRunner, file: Path, outcome: str, data: bytes
) -> None:
    path = "sagas validate (CliRunner)"
    good = SHIPPED[0]
    result = runner.invoke(cli, ["validate", str(file), str(good)])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tally.crash(path, result.exception, data)
        return
    if "Traceback" in output:
        tally.crash(path, "a traceback printed", data)
        return
    expected = 0 if outcome == "valid" else 1
    if result.exit_code != expected:
        tally.crash(path, f"exit status {result.exit_code}, not {expected}: {output[-300:]}", data)
        return
    if f"{good}: ok" not in output:
        tally.crash(
            path, f"the good file beside the bad one was not reported: {output[-300:]}", data
        )
        return
    for line in output.splitlines():
        if not line.startswith((str(file), str(good))):
            tally.finding(path, f"a line naming no file: {line[:200]}", data)
    tally.count(path, "valid" if expected == 0 else "refused (exit 1)")


def _validate_in_a_process(tally: Tally, file: Path, outcome: str, data: bytes) -> None:
    path = "sagas validate (process)"
    done = subprocess.run(
        [str(SAGAS), "validate", str(file)], capture_output=True, timeout=120, check=False
    )
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    expected = 0 if outcome == "valid" else 1
    if "Traceback" in output or done.returncode != expected:
        tally.crash(path, f"exit status {done.returncode}: {output[-500:]}", data)
        return
    tally.count(path, "valid" if expected == 0 else "refused (exit 1)")
