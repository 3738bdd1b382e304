"""Log lines as text or JSON, and the ids every line about a saga carries.

The engine logs to the ``sagas.*`` loggers. Each line about a saga instance carries the fields
``saga_id``, ``step`` and ``event_id`` (``None`` where one does not apply) as attributes of its
record: a JSON formatter writes them as keys, and the message names the ids too, so a text line
reads on its own.
"""

from __future__ import annotations

import logging
from typing import IO, Literal

__all__ = ["LogFormat", "configure_logging", "log_handler", "saga_fields"]

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
JSON_NAMES = {"levelname": "level", "name": "logger"}


def saga_fields(
    saga_id: str | None, step: str | None = None, event_id: str | None = None
) -> dict[str, object]:
    """The ``extra=`` of a log call about a saga instance."""
    return {"saga_id": saga_id, "step": step, "event_id": event_id}


def log_handler(fmt: LogFormat = "text", stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (default: standard error) one line per record: text, or
    a JSON object with ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and every
    field given with ``extra=`` (``saga_id``, ``step``, ``event_id``...)."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(_json_formatter())
    elif fmt == "text":
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        raise ValueError(f"unknown log format {fmt!r} (text or json)")
    return handler


def configure_logging(
    fmt: LogFormat = "text", level: int | str = logging.INFO, stream: IO[str] | None = None
) -> bool:
    """Log to standard error (or ``stream``) as text or JSON lines, at ``level`` and above:
    what ``sagas worker`` does at start.

    Like :func:`logging.basicConfig`, this leaves alone a logging set-up the application (or
    the test runner) already made, and then returns ``False``; attach :func:`log_handler` to a
    logger yourself in that case.
    """
    handler = log_handler(fmt, stream)  # first: an unknown format is refused either way
    root = logging.getLogger()
    if root.handlers:
        return False
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return True


def _json_formatter() -> logging.Formatter:
    # Imported here: only a process that asks for JSON lines pays for the import.
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp="time")
