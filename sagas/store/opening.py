"""Opening a database: for a worker (the schema is created or migrated) or only to read it.

A reader never writes, not even the schema: a SQLite file is opened through a ``mode=ro`` URI
(SQLite itself refuses to write, whoever runs the command, root included) and PostgreSQL
sessions are read-only transactions. Before the first query a reader checks that the database
is an engine database at the schema revision this code expects, so that ``sagas list`` on the
wrong file says so instead of failing on a missing table (or, worse, creating the tables).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from sagas.store.base import StoreError
from sagas.store.dialect import SQLITE_PRAGMAS, create_store_engine
from sagas.store.schema import VERSION_TABLE

__all__ = [
    "NotAnEngineDatabaseError",
    "SchemaVersionError",
    "check_schema",
    "create_reader_engine",
    "create_writer_engine",
    "head_revision",
    "sqlite_file",
]

MIGRATIONS = "sagas.store:migrations"
"""Where the Alembic migrations live (a package resource, so an installed wheel has them)."""

# Settings of a reading connection: those of SQLITE_PRAGMAS that do not write to the file
# (journal_mode=WAL would convert a database that is not in WAL mode yet).
_READER_PRAGMAS = tuple(p for p in SQLITE_PRAGMAS if not p.startswith("journal_mode"))


class NotAnEngineDatabaseError(StoreError):
    """The database (file or schema) holds no engine tables: empty, another application's,
    or not a database at all."""


class SchemaVersionError(StoreError):
    """The engine's schema is at another revision than this code's: older (migrate it with
    ``sagas db upgrade``) or newer (upgrade sagas)."""


@functools.cache
def head_revision() -> str:
    """The schema revision this code expects: the last migration it ships."""
    head = _scripts().get_current_head()
    assert head is not None, "the package ships its migrations"
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    return ScriptDirectory.from_config(config)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; ``None`` for another database or an in-memory one."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database or "").expanduser()


def create_writer_engine(url: URL, where: str) -> Engine:
    """The engine of a worker, ``sagas publish`` or an operator action: it may create the
    database and its tables, but a SQLite file only in a folder that exists (a typo in
    ``--db`` must not grow a tree of folders holding a new, empty database).

    :raises StoreError: the folder of the SQLite file does not exist.
    """
    path = sqlite_file(url)
    if path is not None and not path.parent.is_dir():
        raise StoreError(f"{where}: cannot open: there is no folder {path.parent}")
    return create_store_engine(url.render_as_string(hide_password=False), url.get_backend_name())


def create_reader_engine(url: URL, where: str) -> Engine:
    """An engine that cannot write to the database.

    SQLite: the file must exist; it is opened ``mode=ro``. A file in WAL mode whose folder
    this process cannot write to (so SQLite cannot create the ``-shm`` index beside it) and
    that has no ``-wal`` file (everything is in the main file) is opened ``immutable=1``:
    SQLite then takes no locks, so a worker of another user that starts writing to that file
    meanwhile could make a long-lived reader see a torn state; the reading commands are
    one-shot, and ``sagas serve --read-only`` should run where SQLite can keep its WAL index.
    PostgreSQL: every transaction is ``READ ONLY``.

    :raises StoreError: the SQLite file does not exist, or cannot be opened.
    """
    path = sqlite_file(url)
    if path is not None:
        return _sqlite_reader(path, where)
    if url.get_backend_name() == "sqlite":  # in memory: an empty database, nothing to protect
        return create_store_engine(url.render_as_string(), "sqlite")
    engine = create_store_engine(url.render_as_string(hide_password=False), url.get_backend_name())
    if url.get_backend_name() == "postgresql":
        return engine.execution_options(postgresql_readonly=True)
    return engine


def _sqlite_reader(path: Path, where: str) -> Engine:
    if not path.is_file():
        raise StoreError(f"no database at {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        _probe(uri)
    except sqlite3.DatabaseError as exc:
        if not _readable_when_immutable(path):
            if exc.sqlite_errorname in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise NotAnEngineDatabaseError(
                    f"{where}: not a sagas database: SQLite cannot read it ({exc})"
                ) from None
            hint = (
                ""
                if os.access(path.parent, os.W_OK)
                else f" (SQLite needs to write its WAL index beside it: {path.parent} is read-only)"
            )
            raise StoreError(f"{where}: cannot open to read: {exc}{hint}") from None
        uri += "&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # transactions begin as the store's do
        for pragma in _READER_PRAGMAS:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")  # a deferred transaction: one snapshot for its reads

    return engine


def _probe(uri: str) -> None:
    connection = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        connection.close()


def _readable_when_immutable(path: Path) -> bool:
    """Whether the probe failed only because SQLite could not create the WAL index beside a
    file in a read-only folder, with nothing left in a ``-wal`` file: then the main file holds
    every commit and reading it as immutable sees them all."""
    wal = path.with_name(path.name + "-wal")
    if os.access(path.parent, os.W_OK) or (wal.exists() and wal.stat().st_size > 0):
        return False
    try:
        _probe(f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1")
    except sqlite3.DatabaseError:
        return False
    return True


def check_schema(conn: Connection, where: str) -> None:
    """Check, without writing, that ``conn``'s database holds the engine's tables at the
    revision this code expects.

    :raises NotAnEngineDatabaseError: empty, another application's tables, not a database.
    :raises SchemaVersionError: the schema is older (or newer) than this code's.
    """
    try:
        tables = set(inspect(conn).get_table_names())
    except DBAPIError as exc:
        raise NotAnEngineDatabaseError(f"{where}: not a sagas database: {exc.orig}") from None
    if VERSION_TABLE not in tables:
        if not tables:
            raise NotAnEngineDatabaseError(
                f"{where}: not a sagas database: it has no tables (a worker, `sagas publish` "
                "or `sagas db upgrade` creates them)"
            )
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise NotAnEngineDatabaseError(
            f"{where}: not a sagas database: its tables ({shown}) are not the engine's"
        )
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    revision = context.get_current_revision()
    head = head_revision()
    if revision == head:
        return
    if revision is None:
        raise NotAnEngineDatabaseError(
            f"{where}: not a sagas database: {VERSION_TABLE} holds no revision"
        )
    if revision not in _known_revisions():
        raise SchemaVersionError(
            f"{where}: the schema is at revision {revision}, which this version of sagas does "
            f"not know (it knows up to {head}): upgrade sagas"
        )
    raise SchemaVersionError(
        f"{where}: the schema is at revision {revision}, older than this version of sagas "
        f"(revision {head}): migrate it with `sagas db upgrade --db {where}` (a worker does too)"
    )
