"""Statements compiled once per dialect and executed many rows at a time on the driver.

The decisions of a round write hundreds of rows; SQLAlchemy's per-row parameter handling would
cost more than the database. Each statement is built with SQLAlchemy Core (so the dialect writes
the SQL), compiled once, and its rows go to the driver's ``executemany`` with only the type
conversions the columns need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.expression import Executable

__all__ = ["BulkStatements"]

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor, ...]
    defaults: dict[str, Any]
    positional: bool


class BulkStatements:
    """A cache of compiled statements for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[str, _Compiled] = {}

    def execute(
        self,
        conn: Connection,
        name: str,
        build: Callable[[], Executable],
        rows: Sequence[Mapping[str, Any]],
    ) -> int:
        """Run the statement ``name`` (built by ``build`` the first time) for every row.

        :returns: the driver's row count (the sum over all rows).
        """
        compiled = self._compiled.get(name) or self._compile(name, build())
        if compiled.defaults:  # values written into the statement (``.values(pending=False)``)
            rows = [{**compiled.defaults, **row} for row in rows]
        converted = [(i, p) for i, p in enumerate(compiled.processors) if p is not None]
        params: list[Any] = []
        for row in rows:
            values = [row[n] for n in compiled.names]
            for index, processor in converted:
                values[index] = processor(values[index])
            params.append(values)
        if not compiled.positional:
            params = [dict(zip(compiled.names, values, strict=True)) for values in params]
        else:
            params = [tuple(values) for values in params]
        result = conn.exec_driver_sql(compiled.sql, params)
        return int(result.rowcount)

    def _compile(self, name: str, statement: Executable) -> _Compiled:
        compiled = statement.compile(dialect=self._dialect)  # type: ignore[attr-defined]
        names = tuple(compiled.positiontup if compiled.positional else compiled.binds)
        processors = tuple(
            compiled.binds[n].type.dialect_impl(self._dialect).bind_processor(self._dialect)
            for n in names
        )
        defaults = {
            n: compiled.binds[n].effective_value for n in names if not compiled.binds[n].required
        }
        entry = _Compiled(compiled.string, names, processors, defaults, compiled.positional)
        self._compiled[name] = entry
        return entry
