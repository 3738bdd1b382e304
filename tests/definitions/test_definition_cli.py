"""The `sagas validate`, `sagas graph` and `sagas schema` commands."""

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagas import load_definition, to_dot, to_mermaid
from sagas.cli import cli
from sagas.definitions import json_schema

ROOT = Path(__file__).resolve().parents[2]

ONE_STEP = """\
name: {name}
trigger: Started
correlation: id
steps:
  - name: {step}
    handler: {handler}
    pivot: true
"""


@pytest.fixture(autouse=True)
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture
def handler_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for handler modules; they are forgotten after the test."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
            del sys.modules[name]


def invoke(*args: str) -> tuple[int, list[str], list[str]]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()


def test_validate_prints_one_ok_line_per_shipped_saga() -> None:
    code, out, err = invoke("validate", "definitions/")
    assert (code, err) == (0, [])
    files = sorted(Path("definitions").glob("*.yaml"))
    assert len(out) == len(files)
    assert [line.split(": ok: ")[0] for line in out] == [str(file) for file in files]
    assert (
        "definitions/order_fulfillment.yaml: ok: order_fulfillment v1, 3 steps, "
        "trigger OrderCreated, pivot ship"
    ) in out
    assert (
        "definitions/travel_booking.yaml: ok: travel_booking v1, 6 steps, trigger TripRequested, "
        "pivot charge_customer"
    ) in out


def test_validate_of_a_saga_without_pivot_says_nothing_about_a_pivot(tmp_path: Path) -> None:
    file = tmp_path / "approval.yaml"
    file.write_text(
        "name: approval\nversion: 3\ntrigger: Asked\ncorrelation: id\n"
        "steps:\n  - name: approve\n    wait: {event: Approved}\n",
        encoding="utf-8",
    )
    assert invoke("validate", str(file)) == (
        0,
        [f"{file}: ok: approval v3, 1 steps, trigger Asked"],
        [],
    )


def test_validate_checks_valid_and_invalid_files_together_and_fails(tmp_path: Path) -> None:
    good = "definitions/order_fulfillment.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(ONE_STEP.format(name="bad", step="2nd", handler="go"), encoding="utf-8")
    code, out, _ = invoke("validate", good, str(bad))
    assert code == 1
    assert out[0].startswith(f"{good}: ok: order_fulfillment v1")
    assert out[1:] == [
        f"{bad}:5: steps[0].name: '2nd' is not a valid name: "
        "use only ASCII letters, digits, `_`, `.` or `-`, starting with an ASCII letter or `_`"
    ]


def test_validate_of_a_missing_path_says_which_path_is_missing() -> None:
    code, out, err = invoke("validate", "definitions/", "no/such/folder")
    assert (code, out) == (1, [])
    assert err == ["Error: no/such/folder: no such file or folder"]


def test_validate_of_a_folder_without_definitions_says_so(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a saga", encoding="utf-8")
    code, out, err = invoke("validate", str(tmp_path))
    assert (code, out) == (1, [])
    assert err == [f"Error: no saga definitions (*.yaml, *.yml) in {tmp_path}"]


def test_validate_needs_a_path() -> None:
    code, _, err = invoke("validate")
    assert code == 2
    assert "Missing argument 'PATHS...'" in err[-1]


def test_validate_with_handlers_flags_an_unregistered_handler(
    tmp_path: Path, handler_modules: Path
) -> None:
    (handler_modules / "shop_handlers.py").write_text(
        "from sagas import HandlerRegistry\n"
        "handlers = HandlerRegistry()\n\n\n"
        "@handlers.handler\n"
        "def ship(context):\n"
        "    return None\n",
        encoding="utf-8",
    )
    registered = tmp_path / "registered.yaml"
    registered.write_text(ONE_STEP.format(name="a", step="ship", handler="ship"), encoding="utf-8")
    unregistered = tmp_path / "unregistered.yaml"
    unregistered.write_text(
        ONE_STEP.format(name="b", step="ship", handler="shipp"), encoding="utf-8"
    )
    code, out, _ = invoke("validate", "--handlers", "shop_handlers", str(tmp_path))
    assert code == 1
    assert out == [
        f"{registered}: ok: a v1, 1 steps, trigger Started, pivot ship",
        f"{unregistered}:6: steps[0].handler: no handler is registered as 'shipp'",
    ]


def test_validate_without_handlers_does_not_check_handler_names(tmp_path: Path) -> None:
    file = tmp_path / "saga.yaml"
    file.write_text(ONE_STEP.format(name="a", step="ship", handler="anything"), encoding="utf-8")
    assert invoke("validate", str(file))[0] == 0


def test_validate_merges_the_registries_of_several_handler_modules(
    tmp_path: Path, handler_modules: Path
) -> None:
    for module, name in (("pay_handlers", "pay"), ("post_handlers", "post")):
        (handler_modules / f"{module}.py").write_text(
            "from sagas import HandlerRegistry\n"
            f"handlers = HandlerRegistry({{{name!r}: lambda context: None}})\n",
            encoding="utf-8",
        )
    file = tmp_path / "saga.yaml"
    file.write_text(
        "name: s\ntrigger: T\ncorrelation: id\nsteps:\n"
        "  - name: pay\n    handler: pay\n    compensation: {handler: post}\n",
        encoding="utf-8",
    )
    args = ("validate", "--handlers", "pay_handlers", "--handlers", "post_handlers", str(file))
    assert invoke(*args)[0] == 0


def test_validate_with_a_module_that_cannot_be_imported_says_so(tmp_path: Path) -> None:
    code, out, err = invoke("validate", "--handlers", "no_such_handlers_module", "definitions/")
    assert (code, out) == (1, [])
    assert err == [
        "Error: cannot import handler module 'no_such_handlers_module': "
        "No module named 'no_such_handlers_module'"
    ]


def test_validate_with_a_module_without_registry_says_what_is_missing(
    handler_modules: Path,
) -> None:
    (handler_modules / "empty_handlers.py").write_text("value = 1\n", encoding="utf-8")
    code, _, err = invoke("validate", "--handlers", "empty_handlers", "definitions/")
    assert code == 1
    [message] = err
    assert message.startswith("Error: handler module 'empty_handlers' defines ")
    assert "`handlers`" in message


@pytest.mark.parametrize("file", ["order_fulfillment.yaml", "travel_booking.yaml"])
def test_graph_prints_mermaid_by_default(file: str) -> None:
    path = f"definitions/{file}"
    result = CliRunner().invoke(cli, ["graph", path])
    assert result.exit_code == 0
    assert result.stdout == to_mermaid(load_definition(path))
    assert result.stdout == CliRunner().invoke(cli, ["graph", "--format", "mermaid", path]).stdout
    assert result.stdout.startswith("flowchart TD\n")


@pytest.mark.parametrize("file", ["order_fulfillment.yaml", "travel_booking.yaml"])
def test_graph_prints_dot_on_request(file: str) -> None:
    path = f"definitions/{file}"
    result = CliRunner().invoke(cli, ["graph", "--format", "dot", path])
    assert result.exit_code == 0
    assert result.stdout == to_dot(load_definition(path))
    definition = load_definition(path)
    for index, step in enumerate(definition.steps):
        assert f's{index} [label="{step.name}\\n' in result.stdout


def test_graph_of_an_invalid_definition_prints_its_problems_and_fails() -> None:
    code, out, err = invoke("graph", "tests/definitions/bad/cycle.yaml")
    assert (code, out) == (1, [])
    assert err == [
        "tests/definitions/bad/cycle.yaml:7: steps[0].after: steps depend on each other in a "
        "cycle: first -> second -> third -> first"
    ]


def test_graph_refuses_an_unknown_format() -> None:
    code, _, err = invoke("graph", "--format", "png", "definitions/order_fulfillment.yaml")
    assert code == 2
    assert "'png' is not one of 'mermaid', 'dot'" in err[-1]


def test_graph_of_a_missing_file_fails_with_the_path() -> None:
    code, _, err = invoke("graph", "definitions/missing.yaml")
    assert code == 2
    assert "'definitions/missing.yaml' does not exist" in err[-1]


def test_schema_prints_the_stored_json_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    stored = (ROOT / "definitions" / "saga.schema.json").read_text(encoding="utf-8")
    assert json.loads(result.stdout) == json_schema() == json.loads(stored)
    assert result.stdout == stored


def test_validate_of_a_folder_reports_every_bad_file_and_the_good_one(tmp_path: Path) -> None:
    ok = ONE_STEP.format(name="good", step="ship", handler="ship")
    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    files = {
        "a_good.yaml": ok.encode(),
        "b_syntax.yml": ok.replace("handler: ship", "handler: {ship").encode(),
        "c_latin1.yaml": ok.replace("ship", "caf\xe9", 1).encode("latin-1"),
        "d_laughs.yaml": laughs.encode(),
        "e_schema.yaml": ok.replace("pivot: true", "pivot: maybe").encode(),
        "f_nul.yaml": ok.encode() + b"\x00",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder.yaml").mkdir()  # not a file: skipped

    code, out, err = invoke("validate", str(tmp_path))

    assert (code, err) == (1, [])
    assert out == [
        f"{tmp_path}/a_good.yaml: ok: good v1, 1 steps, trigger Started, pivot ship",
        f"{tmp_path}/b_syntax.yml:7: (yaml): while parsing a flow mapping started on line 6: "
        "expected ',' or '}', but got ':'",
        f"{tmp_path}/c_latin1.yaml:5: (file): not UTF-8 text: byte 0xe9 at column 14 "
        "(save the file as UTF-8)",
        f"{tmp_path}/d_laughs.yaml:6: (yaml): too large: aliases expand it to more than "
        "200,000 values",
        f"{tmp_path}/e_schema.yaml:5: steps[0]: step 'ship' has no compensation, but a later "
        "failure would have to undo it; add a compensation, or mark it `pivot: true` if it is "
        "the point of no return",
        f"{tmp_path}/e_schema.yaml:7: steps[0].pivot: must be a valid boolean, "
        "unable to interpret input",
        f"{tmp_path}/f_nul.yaml:8: (yaml): character 0x0000 is not allowed in YAML",
    ]


def test_graph_of_a_file_that_is_not_utf8_or_too_deep_prints_the_problem(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 10_000 + "]" * 10_000 + "\n", encoding="utf-8")
    assert invoke("graph", str(latin)) == (
        1,
        [],
        [f"{latin}:1: (file): not UTF-8 text: byte 0xe9 at column 10 (save the file as UTF-8)"],
    )
    assert invoke("graph", str(deep)) == (
        1,
        [],
        [f"{deep}:1: (yaml): nested more than 64 levels deep"],
    )
