"""Every code block of README.md and docs/*.md runs, so the documentation cannot rot.

What each fenced block must do, by its language:

* ``yaml``: a complete saga definition that ``sagas.parse_definition`` accepts. Marks (HTML
  comments on the lines just before the fence) change that: ``<!-- fragment -->`` (only valid
  YAML, a piece of a definition), ``<!-- invalid -->`` (a definition that must be refused).
* ``python``: executed in a fresh namespace, as by a ``python`` started at the repository root.
  ``<!-- not-run -->`` only compiles it. A following ``text`` block marked ``<!-- output -->`` is
  what it must print, exactly.
* ``console``/``shell``: every ``$ sagas ...`` line is run through click's ``CliRunner`` against
  ``sagas.cli.cli`` at the repository root, and its shown output must match exactly (a last
  line ``...`` allows more output). Arguments naming a ``*.db`` file point into a temporary
  folder shared by the block's commands. Leading ``NAME=value`` words set the environment;
  ``PYTHONPATH`` also extends ``sys.path``. Blocks of other commands (``make``) are not run.
* ``json``: parses.

``<!-- file: NAME -->`` before a ``yaml`` block saves it as the file NAME for the console blocks
after it on the same page (paths shown stay ``NAME``); before a ``python`` block it is the file
name the code runs under, so line numbers in what it prints are counted from the block's start.

Every block needs a language from ``LANGUAGES``, and every relative link of a page must lead to an
existing file and heading.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from sagas import DefinitionError, parse_definition
from sagas.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARK = re.compile(r"^\s*<!--\s*(?P<mark>.*?)\s*-->\s*$")
FILE_MARK = re.compile(r"^file:\s*(?P<name>\S+)$")
MARKS_BY_LANGUAGE = {
    "yaml": {"fragment", "invalid", "file"},
    "python": {"not-run", "file"},
    "text": {"output"},
}
LANGUAGES = {"yaml", "python", "console", "shell", "json", "text", "mermaid", "dot"}


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page, with the marks written before it."""

    page: str
    line: int
    language: str
    text: str
    marks: frozenset[str] = frozenset()
    file: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    output: str | None = None

    @property
    def id(self) -> str:
        """``page:line`` of the opening fence: where to look when the block fails."""
        return f"{self.page}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` (a file of the repository)."""
    return parse_page(page.relative_to(ROOT).as_posix(), page.read_text(encoding="utf-8"))


def parse_page(name: str, text: str) -> list[Block]:
    """The fenced blocks of the Markdown ``text``, each with the files declared before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    marks: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        mark, fence = MARK.match(line), FENCE.match(line)
        if mark is not None:
            marks.append(mark["mark"])
        elif fence is not None:
            end = _closing_fence(lines, index, fence["fence"])
            width = len(fence["indent"])
            body = [row[width:] if row[:width].isspace() else row for row in lines[index + 1 : end]]
            language = fence["info"].split()[0] if fence["info"].strip() else ""
            blocks.append(_block(name, index + 1, language, body, marks))
            marks = []
            index = end
        elif line.strip():
            marks = []  # a mark belongs to the block right after it, not to one further down
        index += 1
    return _link(blocks)


def _closing_fence(lines: list[str], start: int, fence: str) -> int:
    for end in range(start + 1, len(lines)):
        text = lines[end].strip()
        if text.startswith(fence) and set(text) == {fence[0]}:
            return end
    raise AssertionError(f"line {start + 1}: the code block is never closed")


def _block(page: str, line: int, language: str, body: list[str], marks: list[str]) -> Block:
    flags: set[str] = set()
    file: str | None = None
    for mark in marks:
        named = FILE_MARK.match(mark)
        if named is not None:
            file = named["name"]
            flags.add("file")
        else:
            flags.add(mark)
    text = "\n".join(body) + "\n" if body else ""
    return Block(page, line, language, text, frozenset(flags), file)


def _link(blocks: list[Block]) -> list[Block]:
    """Give each block the files declared before it and each python block its expected output."""
    linked: list[Block] = []
    files: dict[str, str] = {}
    for block in blocks:
        if "output" in block.marks:
            previous = linked[-1] if linked else None
            assert previous is not None, f"{block.id}: an output block follows no python block"
            assert previous.language == "python", f"{block.id}: output of a non-python block"
            linked[-1] = replace(previous, output=block.text)
        linked.append(replace(block, files=dict(files)))
        if block.file is not None and block.language == "yaml":
            files[block.file] = block.text
    return linked


def _commands(text: str) -> Iterator[tuple[str, str]]:
    """Each ``$ command`` of a console block with the output lines shown under it."""
    command: str | None = None
    output: list[str] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, "".join(f"{shown}\n" for shown in output)
            command, output = line[2:], []
        elif command is not None:
            output.append(line)
    if command is not None:
        yield command, "".join(f"{shown}\n" for shown in output)


def _split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """``NAME=value`` words at the start (the environment), then the program and its arguments."""
    words = shlex.split(command)
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def _program(command: str) -> str:
    words = _split_command(command)[1]
    return words[0] if words else ""


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def blocks_in(*languages: str) -> list[Any]:
    """The blocks of ``languages`` (no language given: every block) as pytest parameters whose
    ids are ``page:line``."""
    return [
        pytest.param(block, id=block.id)
        for block in ALL_BLOCKS
        if not languages or block.language in languages
    ]


def sagas_sessions() -> list[Any]:
    """The console blocks that run ``sagas`` (others, like ``make demo``, are not run)."""
    return [
        pytest.param(block, id=block.id)
        for block in ALL_BLOCKS
        if block.language in ("console", "shell")
        and any(_program(command) == "sagas" for command, _ in _commands(block.text))
    ]


def test_the_pages_exist_and_hold_examples() -> None:
    assert {page.name for page in PAGES} >= {"README.md", "definitions.md", "python.md"}
    for page in PAGES:
        assert any(block.page == page.relative_to(ROOT).as_posix() for block in ALL_BLOCKS)


@pytest.mark.parametrize("block", blocks_in())
def test_block_has_a_known_language_and_marks(block: Block) -> None:
    assert block.language in LANGUAGES, f"unknown or missing language {block.language!r}"
    allowed = MARKS_BY_LANGUAGE.get(block.language, set())
    assert block.marks <= allowed, f"marks {sorted(block.marks - allowed)} mean nothing here"
    if block.language in ("console", "shell"):
        programs = {_program(command) == "sagas" for command, _ in _commands(block.text)}
        assert len(programs) <= 1, "a block that runs sagas must hold only sagas commands"


@pytest.mark.parametrize("block", blocks_in("yaml"))
def test_yaml_block_is_a_saga_definition(block: Block) -> None:
    # Leading newlines make the problems of a failing block name the page's own lines.
    text = "\n" * block.line + block.text
    if "fragment" in block.marks:
        assert yaml.safe_load(block.text) is not None
    elif "invalid" in block.marks:
        with pytest.raises(DefinitionError):
            parse_definition(text, block.page)
    else:
        parse_definition(text, block.page)


@pytest.mark.parametrize("block", blocks_in("python"))
def test_python_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.file is not None:
        filename, source = block.file, block.text
    else:  # Tracebacks then point at the page's own lines.
        filename, source = block.page, "\n" * block.line + block.text
    code = compile(source, filename, "exec")
    if "not-run" in block.marks:
        return
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, {"__name__": "docs_example"})
    if block.output is not None:
        assert printed.getvalue() == block.output


@pytest.mark.parametrize("block", sagas_sessions())
def test_console_block_shows_real_output(
    block: Block, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, text in block.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(ROOT)
    for command, expected in _commands(block.text):
        env, (_, *args) = _split_command(command)
        if "PYTHONPATH" in env:
            for entry in reversed(env["PYTHONPATH"].split(":")):
                monkeypatch.syspath_prepend(str((ROOT / entry).resolve()))
        # Files of the page, and databases (``*.db``), live in a folder of the test's own.
        args = [
            str(tmp_path / arg) if arg in block.files or arg.endswith(".db") else arg
            for arg in args
        ]
        result = CliRunner().invoke(cli, args, env=env, prog_name="sagas")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        shown = result.output.replace(f"{tmp_path}/", "")
        if expected.endswith("...\n"):
            assert shown.startswith(expected.removesuffix("...\n")), f"$ {command}"
        else:
            assert shown == expected, f"$ {command}"


@pytest.mark.parametrize("block", blocks_in("json"))
def test_json_block_parses(block: Block) -> None:
    json.loads(block.text)


FENCED = re.compile(r"^(`{3,}|~{3,}).*?^\1\s*$", flags=re.MULTILINE | re.DOTALL)


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_links_lead_to_existing_files_and_headings(page: Path) -> None:
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    for link in LINK.finditer(text):
        target = link["target"]
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{target}: no such file"
        if anchor:
            assert anchor in anchors(linked), f"{target}: no such heading"


def test_marks_belong_to_the_block_right_after_them() -> None:
    page = """<!-- file: order.yaml -->
```yaml
name: a
```
<!-- fragment -->
A paragraph in between cancels the mark.
```python
print("hi")
```
<!-- output -->
```text
hi
```

```console
$ PYTHONPATH=. sagas validate order.yaml
order.yaml: ok
$ sagas schema
...
```
"""
    definition, program, output, session = parse_page("page.md", page)
    assert (definition.id, definition.file, definition.marks) == (
        "page.md:2",
        "order.yaml",
        {"file"},
    )
    assert (program.marks, program.output) == (frozenset(), "hi\n")
    assert output.marks == {"output"}
    assert session.files == {"order.yaml": "name: a\n"}
    assert list(_commands(session.text)) == [
        ("PYTHONPATH=. sagas validate order.yaml", "order.yaml: ok\n"),
        ("sagas schema", "...\n"),
    ]
    assert _split_command("PYTHONPATH=. sagas validate order.yaml") == (
        {"PYTHONPATH": "."},
        ["sagas", "validate", "order.yaml"],
    )
