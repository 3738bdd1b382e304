"""What differs between SQLite and PostgreSQL, in small hooks: connecting, insert-or-skip,
row locks, telling a conflict from a failure, waking other workers, and making workers that
start together change the schema and the definitions one at a time. On PostgreSQL the wake-up
channel and the lock are the store's schema's own: one database can hold several engines."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.expression import Executable

__all__ = [
    "NOTIFY_CHANNEL",
    "SQLITE_PRAGMAS",
    "create_store_engine",
    "insert_or_skip",
    "is_conflict",
    "listen",
    "lock_schema",
    "notify",
    "notify_channel",
]

log = logging.getLogger("sagas.store")

SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",  # durable across process crashes; WAL keeps it consistent
    "foreign_keys=ON",
    "busy_timeout=30000",
    "temp_store=MEMORY",
    "cache_size=-65536",
)
"""Connection settings of every SQLite connection (the benchmarks' raw baseline uses them too)."""

NOTIFY_CHANNEL = "sagas_wakeup"
"""The prefix of the PostgreSQL channel on which publishers and workers wake idle workers. The
channel is the store's schema's own, ``sagas_wakeup.<schema>`` (``sagas_wakeup#<md5 of the
schema>`` for a schema name too long for a channel), so engines in two schemas of one database
do not wake each other."""

SCHEMA_LOCK = 0x5A6A5
"""The first key of the PostgreSQL advisory lock that migrations and definition registrations
hold; the second is the hash of the store's schema, so engines in two schemas of one database
do not wait for each other."""

# The schema is the connection's: its search_path decides where the tables are.
_SCHEMA = "coalesce(current_schema(), '')"
# PostgreSQL channel names are identifiers: at most 63 bytes.
_CHANNEL = (
    f"CASE WHEN octet_length({_SCHEMA}) <= 50 THEN '{NOTIFY_CHANNEL}.' || {_SCHEMA}"
    f" ELSE '{NOTIFY_CHANNEL}#' || md5({_SCHEMA}) END"
)

# PostgreSQL: serialization failure, deadlock detected, lock not available.
_CONFLICT_STATES = {"40001", "40P01", "55P03"}


def create_store_engine(url: str, dialect: str) -> Engine:
    """The SQLAlchemy engine, set up for the dialect.

    SQLite: the pragmas on every connection, and transaction control taken from the driver so a
    write transaction starts with ``BEGIN IMMEDIATE`` (it holds the write lock from the start:
    no lock-upgrade deadlocks between processes) while reads stay plain deferred transactions.
    """
    if dialect != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("sagas_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def insert_or_skip(dialect: str, table: Table, row: Mapping[str, Any], key: str) -> Executable:
    """INSERT of ``row``'s columns that skips rows whose unique ``key`` already exists."""
    values: dict[str, Any] = {column: bindparam(column) for column in row}
    if dialect == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=[key])
    if dialect == "postgresql":
        statement = postgresql.insert(table).values(values)
        return statement.on_conflict_do_nothing(index_elements=[key])
    raise ValueError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def is_conflict(exc: BaseException) -> bool:
    """Whether a database error means "another writer got there first" (retry the round)."""
    if isinstance(exc, IntegrityError):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and state in _CONFLICT_STATES


def lock_schema(conn: Connection) -> None:
    """Hold, until the transaction ends, the lock under which schema migrations and definition
    registrations take turns: workers started together on a new database would otherwise each
    create the tables, or insert version 1 of a definition, and all but one fail. PostgreSQL:
    an advisory transaction lock; SQLite: nothing (a registration's write transaction holds the
    database's write lock already)."""
    if conn.dialect.name == "postgresql":
        lock = f"SELECT pg_advisory_xact_lock(CAST(:key AS integer), hashtext({_SCHEMA}))"
        conn.execute(text(lock), {"key": SCHEMA_LOCK})


def notify(conn: Connection) -> None:
    """Wake the workers listening on the database (PostgreSQL; SQLite workers poll)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_notify({_CHANNEL}, '')"))


def notify_channel(conn: Connection) -> str | None:
    """The channel on which :func:`notify` wakes the workers of ``conn``'s schema (PostgreSQL;
    ``None`` elsewhere)."""
    if conn.dialect.name != "postgresql":
        return None
    return str(conn.scalar(text(f"SELECT {_CHANNEL}")))


def listen(engine: Engine, wake: Callable[[], None]) -> Callable[[], None] | None:
    """Call ``wake`` on every notification (PostgreSQL), from a thread with its own
    connection; returns the function that stops it. ``None`` on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    import psycopg  # the driver of the engine's URL

    url = engine.url.set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    stopping = threading.Event()
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        row = conn.execute(f"SELECT {_CHANNEL}").fetchone()
        channel = str(row[0]) if row else NOTIFY_CHANNEL
        conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
    except BaseException:
        conn.close()
        raise

    def receive() -> None:
        try:
            while not stopping.is_set():
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    wake()
        except psycopg.Error as exc:  # the server went away: workers fall back to polling
            if not stopping.is_set():
                log.warning("stopped listening for wake-ups: %s", exc)
        finally:
            conn.close()

    thread = threading.Thread(target=receive, name="sagas-listen", daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(timeout=2)

    return stop
