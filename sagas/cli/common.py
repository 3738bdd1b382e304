"""What the CLI commands share: the ``--db`` option, opening the store, error reporting."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sagas.errors import SagaError
from sagas.secrets import mask_urls
from sagas.store.sql import DEFAULT_DATABASE_URL, SQLStore, database_url

__all__ = ["DB_ENV", "console", "db_option", "open_store", "reports_errors"]

DB_ENV = "SAGAS_DATABASE_URL"
F = TypeVar("F", bound=Callable[..., Any])


def console() -> Console:
    """A console on the command's stdout (so click's test runner sees it)."""
    return Console(file=sys.stdout, width=120, highlight=False)


def db_option(default: str | None = DEFAULT_DATABASE_URL) -> Callable[[F], F]:
    """``--db URL_OR_PATH``: a SQLAlchemy URL or a SQLite file path; else $SAGAS_DATABASE_URL."""
    return click.option(
        "--db",
        envvar=DB_ENV,
        default=default,
        show_default=default is not None,
        metavar="URL_OR_PATH",
        help=f"Database: a SQLAlchemy URL or a SQLite file path (env {DB_ENV}).",
    )


def max_event_bytes_option(text: str) -> Callable[[F], F]:
    """``--max-event-bytes``: the largest event the intake takes (commands that take events
    in, or send them through the intake again)."""
    from sagas.intake import DEFAULT_MAX_EVENT_BYTES

    return click.option(
        "--max-event-bytes",
        type=click.IntRange(1024, 64 * 1024 * 1024),
        default=DEFAULT_MAX_EVENT_BYTES,
        show_default=True,
        metavar="BYTES",
        help=text,
    )


def open_store(db: str, *, must_exist: bool = False, read_only: bool = False) -> SQLStore:
    """The store on ``db``; errors become a clear CLI error.

    ``must_exist``: a SQLite file that is not there is an error (a typo must not create an
    empty database to read from). ``read_only``: for commands that only read: nothing is
    written, not even the schema, and a database that is not the engine's (or has an older
    schema) is an error that says so; it implies ``must_exist``.
    """
    try:
        url = make_url(database_url(db))
    except (ArgumentError, ValueError) as exc:  # not quoted: the URL may hold a password
        message = f"not a database URL (nor a file path): {exc}"
        raise click.BadParameter(message, param_hint="--db") from None
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    missing = sqlite_file and not Path(url.database or "").expanduser().exists()
    if (must_exist or read_only) and missing:
        raise click.ClickException(f"no database at {url.database}")
    try:
        return SQLStore(db, read_only=read_only)
    except SagaError as exc:
        raise click.ClickException(mask_urls(str(exc))) from exc


def reports_errors(command: F) -> F:
    """Turn the engine's errors into ``Error: <message>`` and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SagaError as exc:
            raise click.ClickException(mask_urls(str(exc))) from exc

    return wrapper  # type: ignore[return-value]
