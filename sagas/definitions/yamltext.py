"""Safe YAML text: what the loader reads definition files with.

PyYAML's safe loader builds no Python objects, but it lets aliases share a node any number of
times, so a kilobyte of nested aliases ("billion laughs") stands for billions of values that
every later walk over the document visits; it lets an anchor refer to itself; and its pure-Python
composer recurses once per nesting level. :func:`compose_yaml` refuses each of these with a
problem naming the line, measuring the document without recursion before anything walks it.
It parses with libyaml where PyYAML has it (several times faster; libyaml also stops at 1,000
nesting levels) and asks the pure-Python parser again only to word a syntax error.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from sagas.errors import SagaError

__all__ = [
    "MAX_DEFINITION_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "YAMLTextError",
    "compose_yaml",
    "construct_yaml",
    "decode_text",
]

MAX_DEFINITION_BYTES = 1024 * 1024
"""The largest definition file read (1 MiB: a definition of 4,000 steps is about 900 KiB)."""

MAX_YAML_VALUES = 200_000
"""The most values (scalars, lists, mappings and keys) a definition may hold, each alias counted
as often as it is used: a definition of 4,000 steps holds about 120,000."""

MAX_YAML_DEPTH = 64
"""How deeply a definition may nest (a real one nests a dozen levels at most)."""

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_REWORD_LIMIT = 256 * 1024  # PyYAML's pure-Python parser reads about 250 KB/s


class YAMLTextError(SagaError, ValueError):
    """YAML text that is refused: ``line`` (1-based, ``None`` when unknown) and why."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message if line is None else f"line {line}: {message}")


def decode_text(data: bytes) -> str:
    """``data`` as UTF-8 text.

    :raises YAMLTextError: naming the line and column of the first byte that is not UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        before = data[data.rfind(b"\n", 0, exc.start) + 1 : exc.start]
        column = len(before.decode("utf-8", "replace")) + 1  # characters, as editors count
        byte = data[exc.start : exc.start + 1].hex()
        raise YAMLTextError(
            line, f"not UTF-8 text: byte 0x{byte} at column {column} (save the file as UTF-8)"
        ) from None


def compose_yaml(text: str) -> yaml.Node | None:
    """The node graph of the single YAML document in ``text`` (``None`` when it is empty),
    checked so that walking it is bounded: no alias cycle, at most :data:`MAX_YAML_VALUES`
    values once aliases are expanded, at most :data:`MAX_YAML_DEPTH` levels.

    :raises YAMLTextError: a syntax error, a character YAML does not allow, or a bound exceeded.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        bad = f"U+{ord(text[exc.start]):04X}"
        raise YAMLTextError(line, f"character {bad} (a lone surrogate) is not text") from None
    loader = _Loader(text)
    try:
        with _collector_held():
            node: yaml.Node | None = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise _syntax_problem(text, exc) from None
    finally:
        loader.dispose()
    if node is not None:
        _check_bounds(node)
    return node


def construct_yaml(node: yaml.Node) -> Any:
    """The Python value of a node graph that :func:`compose_yaml` returned.

    :raises YAMLTextError: a tag the safe loader refuses, or a value it cannot build.
    """
    try:
        with _collector_held():
            return _Constructor().construct_document(node)
    except yaml.YAMLError as exc:
        raise _problem(exc) from None


class _Constructor(yaml.constructor.SafeConstructor):
    """The safe constructor, with a value it cannot build reported as a problem at that
    value's line: an explicit tag on a malformed scalar makes PyYAML raise what its parsing
    code happens to (``!!timestamp 2020-99-99``: ``ValueError``; ``!!timestamp 2020-01-01x``:
    ``AttributeError``)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # see the class docstring
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {node.tag}: {exc}", node.start_mark
            ) from None


@contextmanager
def _collector_held() -> Iterator[None]:
    """Hold Python's cyclic garbage collector while a document's objects are built: they all
    stay alive, and a collection every 700 allocations re-examined all of them, which doubled
    the time to load a definition of 2,000 steps. The input is bounded
    (:data:`MAX_DEFINITION_BYTES`), so the pause is too."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _syntax_problem(text: str, exc: yaml.YAMLError) -> YAMLTextError:
    reword = _Loader is not yaml.SafeLoader and len(text) <= _REWORD_LIMIT
    if reword and isinstance(exc, yaml.MarkedYAMLError):
        # libyaml words syntax errors tersely ("did not find expected ',' or '}'"); PyYAML
        # says what it found instead. Only a file that failed already pays for a second parse,
        # and only a file small enough for it to be quick.
        loader = yaml.SafeLoader(text)
        try:
            loader.get_single_node()
        except yaml.YAMLError as worded:
            exc = worded
        except RecursionError:
            pass  # too deep for the pure-Python composer: keep libyaml's words
        finally:
            loader.dispose()
    if isinstance(exc, yaml.MarkedYAMLError) and "maximum nesting depth" in (exc.problem or ""):
        mark = exc.problem_mark
        return YAMLTextError(
            mark.line + 1 if mark else None, f"nested more than {MAX_YAML_DEPTH} levels deep"
        )
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return YAMLTextError(line, f"character {exc.character:#06x} is not allowed in YAML")
    return _problem(exc)


def _problem(exc: yaml.YAMLError) -> YAMLTextError:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return YAMLTextError(None, str(exc))
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    context = exc.context
    if context and exc.context_mark and exc.context_mark.line + 1 != line:
        context += f" started on line {exc.context_mark.line + 1}"
    return YAMLTextError(line, ": ".join(part for part in (context, exc.problem) if part))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_bounds(root: yaml.Node) -> None:
    """Count the values and levels of the document as if every alias were expanded, in time
    linear in its distinct nodes: each collection's totals are computed once (post-order, with
    an explicit stack) and reused wherever an alias shares it."""
    if isinstance(root, yaml.ScalarNode):
        return
    totals: dict[int, tuple[int, int]] = {}  # id of a collection: (values, levels)
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    open_nodes: set[int] = set()
    distinct = 0
    while stack:
        node, children = stack.pop()
        key = id(node)
        if children is not None:  # its collections are counted: count it
            open_nodes.discard(key)
            values, levels = 1, 1
            for child in children:
                if isinstance(child, yaml.ScalarNode):
                    values += 1
                    levels = max(levels, 2)
                else:
                    child_values, child_levels = totals[id(child)]
                    values += child_values
                    levels = max(levels, child_levels + 1)
            if values > MAX_YAML_VALUES:
                what = "aliases expand it to" if distinct < values else "it holds"
                raise YAMLTextError(
                    node.start_mark.line + 1,
                    f"too large: {what} more than {MAX_YAML_VALUES:,} values",
                )
            if levels > MAX_YAML_DEPTH:
                raise YAMLTextError(
                    node.start_mark.line + 1, f"nested more than {MAX_YAML_DEPTH} levels deep"
                )
            totals[key] = (values, levels)
            continue
        if key in totals:
            continue
        if key in open_nodes:
            raise YAMLTextError(node.start_mark.line + 1, "an alias refers to its own anchor")
        open_nodes.add(key)
        children = _children(node)
        distinct += len(children) + 1
        stack.append((node, children))
        stack.extend((child, None) for child in children if not isinstance(child, yaml.ScalarNode))
