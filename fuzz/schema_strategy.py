"""Hypothesis strategies for saga definition documents, generated from the JSON Schema
(``definitions/saga.schema.json``) with hypothesis-jsonschema.

Two things are done to hypothesis-jsonschema here, both to its private internals, both only
when needed:

* hypothesis-jsonschema 0.23.1 (the latest release) still calls ``many.more()``, which
  Hypothesis 6.16x removed in favour of iterating a ``with many(...)`` block: every object
  schema with ``patternProperties`` (the saga's ``events``) fails with ``AttributeError``.
  :func:`_install_compat` gives ``many`` a ``more()`` that drives the new protocol.
* It re-canonicalises and re-merges subschemas on every draw of an object's property (about
  1 document/s on our schema); the strategies it builds for a subschema are memoised, which
  gives the same documents about 30 times faster.
* Strings with a ``pattern`` are drawn by Hypothesis's general regex strategy, half of the
  time spent; the schema's two kinds of pattern (a name: ``^[first][rest]*$``, and a
  duration) get a direct strategy for the same language (:func:`_pattern_strategy`); any
  other pattern keeps the general one.

The schema is also bounded (:func:`bounded_schema`: lists, free-form mappings and strings get
a small maximum) so that generation spends its time on many shapes, not on long ones;
oversized and deeply nested documents are the mutation campaign's business.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as conjecture_utils

__all__ = ["SCHEMA_FILE", "bounded_schema", "definition_documents"]

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "definitions" / "saga.schema.json"

_END = object()


def _more(self: Any) -> bool:
    """The removed ``many.more()``, on top of ``with many(...) as e: for _ in e:``."""
    if self._depth is None:
        self.__enter__()
        self._fuzz_iterator = iter(self)
    if next(self._fuzz_iterator, _END) is _END:
        self.__exit__(None)
        return False
    return True


def _memoised(function: Callable[..., Any], key: Callable[[Any], str]) -> Callable[..., Any]:
    cache: dict[tuple[str, int, int], Any] = {}

    def cached(schema: Any, *, alphabet: Any, custom_formats: Any) -> Any:
        index = (key(schema), id(alphabet), id(custom_formats))
        if index not in cache:
            cache[index] = function(schema, alphabet=alphabet, custom_formats=custom_formats)
        return cache[index]

    return cached


_NAME_PATTERN = re.compile(r"\^\[([^\]]+)\]\[([^\]]+)\]\*\$")
_DURATION_UNITS = ("d", "h", "ms", "m", "s", "us")


def _characters(klass: str) -> str:
    """The characters of a regex character class's body (ranges and literals, no escapes)."""
    out, at = [], 0
    while at < len(klass):
        if at + 2 < len(klass) and klass[at + 1] == "-":
            out += [chr(c) for c in range(ord(klass[at]), ord(klass[at + 2]) + 1)]
            at += 3
        else:
            out.append(klass[at])
            at += 1
    return "".join(dict.fromkeys(out))


def _number() -> st.SearchStrategy[str]:
    return st.builds(
        lambda whole, fraction: f"{whole}{fraction}",
        st.integers(0, 10_000),
        st.sampled_from(["", ".5", ".25", ".0"]),
    )


def _duration() -> st.SearchStrategy[str]:
    compact = st.lists(
        st.builds(lambda n, unit: n + unit, _number(), st.sampled_from(_DURATION_UNITS)),
        min_size=1,
        max_size=3,
    ).map("".join)
    date = st.lists(
        st.builds(lambda n, unit: n + unit, _number(), st.sampled_from("YMWD")), max_size=2
    ).map("".join)
    time = st.lists(
        st.builds(lambda n, unit: n + unit, _number(), st.sampled_from("HMS")),
        min_size=1,
        max_size=3,
    ).map("".join)
    iso = st.builds(
        lambda d, t: f"P{d}{'T' + t if t else ''}", date, st.one_of(st.just(""), time)
    ).filter(lambda text: len(text) > 1 and (text[1].isdigit() or text[1:3].startswith("T")))
    return st.one_of(compact, iso)


def _pattern_strategy(original: Callable[..., Any]) -> Callable[..., Any]:
    def strategy(pattern: str, alphabet: Any) -> Any:
        name = _NAME_PATTERN.fullmatch(pattern)
        if name is not None:
            first, rest = _characters(name.group(1)), _characters(name.group(2))
            return st.builds(
                str.__add__, st.sampled_from(first), st.text(st.sampled_from(rest), max_size=12)
            ).filter(re.compile(pattern).search)
        if "(?:d|h|ms|m|s|us)" in pattern:
            return _duration().filter(re.compile(pattern).search)
        return original(pattern, alphabet)

    return strategy


def _install_compat() -> None:
    import hypothesis_jsonschema._from_schema as from_schema_module
    from hypothesis_jsonschema._canonicalise import encode_canonical_json

    if not hasattr(conjecture_utils.many, "more"):
        conjecture_utils.many.more = _more  # type: ignore[attr-defined]
    if getattr(from_schema_module, "_fuzz_memoised", False):
        return
    name = "__from_schema"  # a module-level function: its name is not mangled
    original = getattr(from_schema_module, name)
    setattr(from_schema_module, name, _memoised(original, encode_canonical_json))
    from_schema_module.merged_as_strategies = _memoised(
        from_schema_module.merged_as_strategies,
        lambda schemas: json.dumps([encode_canonical_json(s) for s in schemas]),
    )
    from_schema_module.from_js_regex = _pattern_strategy(from_schema_module.from_js_regex)
    from_schema_module._fuzz_memoised = True  # type: ignore[attr-defined]


def bounded_schema(
    schema: dict[str, Any], *, items: int = 3, properties: int = 3, length: int = 16
) -> dict[str, Any]:
    """A copy of ``schema`` where lists, free-form mappings and strings that have no bound
    get one (the documents stay valid for the original schema)."""
    bounded = copy.deepcopy(schema)
    pending: list[Any] = [bounded]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "array":
                node.setdefault("maxItems", items)
            elif kind == "object" and "properties" not in node:
                node.setdefault("maxProperties", properties)
            elif kind == "string" and "pattern" not in node:
                node.setdefault("maxLength", length)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return bounded


def definition_documents(schema_file: Path = SCHEMA_FILE) -> st.SearchStrategy[Any]:
    """Documents valid for the saga definition schema (bounded, see the module)."""
    _install_compat()
    from hypothesis_jsonschema import from_schema

    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    return from_schema(bounded_schema(schema))
