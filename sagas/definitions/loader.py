"""Reading saga definitions from YAML files: safe loading, problems with file, line and field."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator
from pathlib import Path as FilePath

import yaml

from sagas.definitions.graph import Path
from sagas.definitions.model import SagaDefinition
from sagas.definitions.validate import MAX_PROBLEMS, validate_definition
from sagas.definitions.yamltext import (
    MAX_DEFINITION_BYTES,
    YAMLTextError,
    compose_yaml,
    construct_yaml,
    decode_text,
)
from sagas.errors import DefinitionError, Problem, format_path

__all__ = [
    "definition_files",
    "dump_definition",
    "load_definition",
    "load_definitions",
    "parse_definition",
]

YAML_SUFFIXES = (".yaml", ".yml")


def load_definition(
    file: str | FilePath, handlers: Collection[str] | None = None
) -> SagaDefinition:
    """Load and validate the saga definition in a YAML file.

    :raises DefinitionError: every problem of the file, each as ``file:line: field: message``
        (a file larger than :data:`MAX_DEFINITION_BYTES` or not UTF-8 is one such problem).
    :raises OSError: when the file cannot be read.
    """
    path = FilePath(file)
    with path.open("rb") as stream:
        # Read one byte past the limit rather than trust the size a special file reports.
        data = stream.read(MAX_DEFINITION_BYTES + 1)
    if len(data) > MAX_DEFINITION_BYTES:
        message = f"larger than {MAX_DEFINITION_BYTES:,} bytes; a definition file is smaller"
        raise DefinitionError([Problem(str(file), None, "(file)", message)])
    try:
        text = decode_text(data)
    except YAMLTextError as exc:
        raise DefinitionError([Problem(str(file), exc.line, "(file)", exc.message)]) from None
    return parse_definition(text, str(file), handlers)


def parse_definition(
    text: str, source: str = "<string>", handlers: Collection[str] | None = None
) -> SagaDefinition:
    """Validate the YAML ``text`` of a saga definition; ``source`` names it in problems.

    :raises DefinitionError: every problem found.
    """
    if len(text) > MAX_DEFINITION_BYTES:  # characters: at least as many bytes
        message = f"larger than {MAX_DEFINITION_BYTES:,} bytes; a definition is smaller"
        raise DefinitionError([Problem(source, None, "(yaml)", message)])
    try:
        node = compose_yaml(text)
        raw = construct_yaml(node) if node is not None else None
    except YAMLTextError as exc:
        raise DefinitionError([Problem(source, exc.line, "(yaml)", exc.message)]) from None
    duplicates = [
        Problem(source, line, format_path(path), "duplicate key; YAML keeps only the last one")
        for path, line in itertools.islice(_duplicate_keys(node, ()), MAX_PROBLEMS)
    ]

    def locate(path: Path) -> int | None:
        return _line_of(node, path)

    try:
        definition = validate_definition(raw, source=source, locate=locate, handlers=handlers)
    except DefinitionError as exc:
        # A count of the problems not shown comes last, after MAX_PROBLEMS of them.
        shown, more = exc.problems[:MAX_PROBLEMS], exc.problems[MAX_PROBLEMS:]
        raise DefinitionError([*sorted({*duplicates, *shown}, key=_order), *more]) from None
    if duplicates:
        raise DefinitionError(duplicates)
    return definition


def definition_files(paths: Collection[str | FilePath]) -> list[FilePath]:
    """The YAML files named by ``paths``: files as given, folders searched recursively for
    regular files, sorted.

    :raises FileNotFoundError: for a path that does not exist.
    """
    files: list[FilePath] = []
    for entry in map(FilePath, paths):
        if entry.is_dir():
            # Regular files only: a folder or a FIFO named *.yaml is no definition (and
            # reading a FIFO would wait forever).
            found = (p for p in entry.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
            files += sorted(found)
        elif entry.exists():
            files.append(entry)
        else:
            raise FileNotFoundError(f"{entry}: no such file or folder")
    return files


def load_definitions(
    paths: Collection[str | FilePath], handlers: Collection[str] | None = None
) -> list[SagaDefinition]:
    """Load every definition under ``paths``; problems of all files are reported together.

    :raises DefinitionError: every problem of every file.
    """
    definitions: list[SagaDefinition] = []
    problems: list[Problem] = []
    for file in definition_files(paths):
        try:
            definitions.append(load_definition(file, handlers))
        except DefinitionError as exc:
            problems += exc.problems
    if problems:
        raise DefinitionError(problems)
    return definitions


def _order(problem: Problem) -> tuple[int, str, str]:
    return (problem.line or 0, problem.field, problem.message)


def _line_of(node: yaml.Node | None, path: Path) -> int | None:
    """The line of the deepest node on ``path`` (a key's own line for mapping entries)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, child = key.start_mark.line + 1, value
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _duplicate_keys(node: yaml.Node | None, path: Path) -> Iterator[tuple[Path, int]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else repr(key)
            if name in seen:
                yield (*path, name), key.start_mark.line + 1
            seen.add(name)
            yield from _duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index))


def dump_definition(definition: SagaDefinition) -> str:
    """The definition as YAML (defaults left out); :func:`parse_definition` reads it back equal."""
    data = definition.model_dump(mode="json", exclude_defaults=True)
    data["steps"] = [{"name": step.pop("name"), **step} for step in data["steps"]]
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """A safe dumper that writes every string so that it reads back the same."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML writes NEL (U+0085) raw into a single-quoted scalar, where it reads back as a
    # line break; double quotes escape it as \N.
    style = '"' if "\x85" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
