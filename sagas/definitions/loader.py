"""Reading saga definitions from YAML files: safe loading, problems with file, line and field."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path as FilePath

import yaml

from sagas.definitions.graph import Path
from sagas.definitions.model import SagaDefinition
from sagas.definitions.validate import validate_definition
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

    :raises DefinitionError: every problem of the file, each as ``file:line: field: message``.
    :raises OSError: when the file cannot be read.
    """
    path = FilePath(file)
    return parse_definition(path.read_text(encoding="utf-8"), str(file), handlers)


def parse_definition(
    text: str, source: str = "<string>", handlers: Collection[str] | None = None
) -> SagaDefinition:
    """Validate the YAML ``text`` of a saga definition; ``source`` names it in problems.

    :raises DefinitionError: every problem found.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        raw = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        context = exc.context
        if context and exc.context_mark and exc.context_mark.line + 1 != line:
            context += f" started on line {exc.context_mark.line + 1}"
        message = ": ".join(part for part in (context, exc.problem) if part)
        raise DefinitionError([Problem(source, line, "(yaml)", message)]) from None
    except yaml.YAMLError as exc:
        raise DefinitionError([Problem(source, None, "(yaml)", str(exc))]) from None
    finally:
        loader.dispose()
    duplicates = [
        Problem(source, line, format_path(path), "duplicate key; YAML keeps only the last one")
        for path, line in _duplicate_keys(node, ())
    ]

    def locate(path: Path) -> int | None:
        return _line_of(node, path)

    try:
        definition = validate_definition(raw, source=source, locate=locate, handlers=handlers)
    except DefinitionError as exc:
        raise DefinitionError(sorted({*duplicates, *exc.problems}, key=_order)) from None
    if duplicates:
        raise DefinitionError(duplicates)
    return definition


def definition_files(paths: Collection[str | FilePath]) -> list[FilePath]:
    """The YAML files named by ``paths``: files as given, folders searched recursively, sorted.

    :raises FileNotFoundError: for a path that does not exist.
    """
    files: list[FilePath] = []
    for entry in map(FilePath, paths):
        if entry.is_dir():
            files += sorted(p for p in entry.rglob("*") if p.suffix in YAML_SUFFIXES)
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
