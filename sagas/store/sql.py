"""The store on SQLAlchemy Core: a SQLite file by default, PostgreSQL for production.

Dialect differences live in :mod:`sagas.store.dialect`; a worker's round in
:mod:`sagas.store.round`; rows and statements in :mod:`sagas.store.rows`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, Table, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from sagas.definitions.model import SagaDefinition
from sagas.engine.effects import outbox_adapter
from sagas.events import Event
from sagas.store import queries, rows
from sagas.store import schema as t
from sagas.store.base import (
    ConcurrencyConflictError,
    DefinitionVersion,
    Store,
    StoreError,
)
from sagas.store.bulk import BulkStatements
from sagas.store.dead_letter_sql import SQLDeadLetters
from sagas.store.dialect import (
    SQLITE_PRAGMAS,
    insert_or_skip,
    is_conflict,
    listen,
    lock_schema,
    notify,
)
from sagas.store.inbox_sql import SQLInbox
from sagas.store.opening import check_schema, create_reader_engine, create_writer_engine
from sagas.store.reads_sql import SQLReads
from sagas.store.records import (
    Changes,
    InstanceRecord,
    OutboxItem,
    QueuedEvent,
)
from sagas.store.round import SQLRound
from sagas.store.writes import write_changes

__all__ = ["DEFAULT_DATABASE_URL", "SQLITE_PRAGMAS", "SQLStore", "database_url"]

DEFAULT_DATABASE_URL = "sqlite:///sagas.db"


def database_url(value: str) -> str:
    """A SQLAlchemy URL from ``--db``: a plain path names a SQLite file, ``postgresql://`` (or
    ``postgres://``) uses psycopg 3, other URLs pass through."""
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser()}"
    scheme, rest = value.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return value


_ENQUEUE_TRIES = 5
"""How often queueing is tried when a deadlock with another writer rolled it back."""


class SQLStore(SQLReads, SQLDeadLetters, SQLInbox, Store):
    """A :class:`Store` on one database URL; the schema is migrated (Alembic) on first use,
    unless it is opened ``read_only``."""

    def __init__(
        self, url: str = DEFAULT_DATABASE_URL, *, migrate: bool = True, read_only: bool = False
    ) -> None:
        """Open the database at ``url`` (a SQLAlchemy URL or a SQLite file path).

        ``migrate``: create or upgrade the schema now. ``read_only``: never write, not even the
        schema (see :mod:`sagas.store.opening`); the database must exist and be an engine
        database at this code's schema revision.

        :raises StoreError: the database cannot be opened, or the folder of a SQLite file does
            not exist; read-only also ``NotAnEngineDatabaseError`` and ``SchemaVersionError``.
        """
        self.url = database_url(url)
        try:
            parsed = make_url(self.url)
        except (ArgumentError, ValueError) as exc:  # the URL is not quoted: it may hold a password
            raise StoreError(f"not a database URL (nor a file path): {exc}") from None
        self.dialect = parsed.get_backend_name()
        self._where = parsed.render_as_string(hide_password=True)
        self.read_only = read_only
        opener = create_reader_engine if read_only else create_writer_engine
        try:
            self.engine: Engine = opener(parsed, self._where)
        except (ImportError, ArgumentError) as exc:
            extra = (
                " (pip install 'sagas-engine[postgres]')" if self.dialect == "postgresql" else ""
            )
            raise StoreError(f"{self._where}: cannot open: {exc}{extra}") from None
        self._bulk = BulkStatements(self.engine.dialect)
        if read_only:
            try:
                with self._read("reading the schema") as conn:
                    check_schema(conn, self._where)
            except BaseException:
                self.engine.dispose()
                raise
        elif migrate:
            self.upgrade()

    # -- schema -----------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision``."""
        with self._translate("migrating"), self.engine.begin() as conn:
            lock_schema(conn)
            command.upgrade(_alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        """The schema revision of the database (``None`` before the first migration)."""
        with self._translate("reading the schema revision"), self.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": t.VERSION_TABLE})
            return context.get_current_revision()

    # -- definitions ------------------------------------------------------------------------

    def register_definition(self, definition: SagaDefinition, registered_at: datetime) -> int:
        body = definition.model_dump(mode="json")
        body.pop("version")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._write("registering a definition") as conn:
            lock_schema(conn)
            same = conn.scalar(queries.definition_with_digest(definition.name, digest))
            if same is not None:
                conn.execute(
                    update(t.definitions)
                    .where(t.definitions.c.name == definition.name, t.definitions.c.version == same)
                    .values(registered_at=registered_at)
                )
                return int(same)
            latest = conn.scalar(
                select(func.max(t.definitions.c.version)).where(
                    t.definitions.c.name == definition.name
                )
            )
            version = max(definition.version, (latest + 1) if latest else 1)
            stored = definition.model_copy(update={"version": version})
            conn.execute(
                insert(t.definitions).values(
                    name=definition.name,
                    version=version,
                    digest=digest,
                    body=stored.model_dump_json(),
                    registered_at=registered_at,
                )
            )
            return version

    def definition(self, name: str, version: int) -> SagaDefinition:
        with self._read("reading a definition") as conn:
            body = conn.scalar(
                select(t.definitions.c.body).where(
                    t.definitions.c.name == name, t.definitions.c.version == version
                )
            )
        if body is None:
            raise LookupError(f"saga definition {name!r} version {version} is not registered")
        return SagaDefinition.model_validate_json(body)

    def definitions(self, name: str | None = None) -> list[SagaDefinition]:
        query = select(t.definitions.c.body).order_by(t.definitions.c.name, t.definitions.c.version)
        if name is not None:
            query = query.where(t.definitions.c.name == name)
        with self._read("reading definitions") as conn:
            return [SagaDefinition.model_validate_json(body) for body in conn.scalars(query)]

    def definition_versions(self, name: str | None = None) -> list[DefinitionVersion]:
        with self._read("reading definition versions") as conn:
            return [
                DefinitionVersion(str(saga), int(version), at, int(running))
                for saga, version, at, running in conn.execute(queries.definition_versions(name))
            ]

    # -- rounds -----------------------------------------------------------------------------

    @contextmanager
    def round(self) -> Iterator[SQLRound]:
        try:
            with self._write("running a round") as conn:
                yield SQLRound(self, conn)
        except ConcurrencyConflictError:
            raise
        except StoreError as exc:
            if exc.__cause__ is not None and is_conflict(exc.__cause__):
                # Not the driver's message: it quotes the statement and the saga's data.
                raise ConcurrencyConflictError(
                    f"{self._where}: another worker got there first"
                ) from exc
            raise

    def listen(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        return listen(self.engine, wake)

    # -- queue and deciding -----------------------------------------------------------------

    def enqueue(self, events: Sequence[Event], *, received_at: datetime) -> int:
        if not events:
            return 0
        for attempt in range(_ENQUEUE_TRIES):
            try:
                with self._write("queueing events") as conn:
                    queued = self._enqueue(conn, events, received_at)
                    if queued:
                        notify(conn)
                    return queued
            except StoreError as exc:
                # Two writers queueing the same ids in different orders deadlock on
                # PostgreSQL; the victim was rolled back whole, so queueing again is safe.
                last = attempt == _ENQUEUE_TRIES - 1
                if last or exc.__cause__ is None or not is_conflict(exc.__cause__):
                    raise
        raise AssertionError("unreachable")

    def queued(self, limit: int) -> list[QueuedEvent]:
        query = (
            select(t.inbox.c.position, t.inbox.c.event, t.inbox.c.enqueued_at)
            .where(t.inbox.c.queued)
            .order_by(t.inbox.c.position)
            .limit(limit)
        )
        with self._read("reading the queue") as conn:
            rows = conn.execute(query).all()
        return [
            QueuedEvent(row.position, Event.model_validate_json(row.event), row.enqueued_at)
            for row in rows
        ]

    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]:
        if not saga_ids:
            return {}
        query = select(t.instances.c.state, t.instances.c.version).where(
            t.instances.c.saga_id.in_(list(saga_ids))
        )
        with self._read("reading instances") as conn:
            records = [rows.instance(row) for row in conn.execute(query)]
        return {record.saga_id: record for record in records}

    def _apply(self, conn: Connection, changes: Changes) -> None:
        """Write ``changes`` on ``conn`` (inside the caller's transaction)."""
        write_changes(conn, changes, self._bulk, self.dialect, self._where)

    def _enqueue(self, conn: Connection, events: Sequence[Event], received_at: datetime) -> int:
        batch = [rows.inbox_row(event, queued=True, received_at=received_at) for event in events]
        build = lambda: self._insert_or_skip(t.inbox, batch[0], "event_id")  # noqa: E731
        return max(self._bulk.execute(conn, "enqueue", build, batch), 0)

    def _insert_or_skip(self, table: Table, row: Mapping[str, Any], key: str) -> Executable:
        return insert_or_skip(self.dialect, table, row, key)

    # -- effects and timers -----------------------------------------------------------------

    def pending_outbox(self, limit: int) -> list[OutboxItem]:
        query = (
            select(t.outbox.c.id, t.outbox.c.saga_id, t.outbox.c.effect)
            .order_by(t.outbox.c.id)
            .limit(limit)
        )
        with self._read("reading the outbox") as conn:
            rows = conn.execute(query).all()
        return [
            OutboxItem(row.id, row.saga_id, outbox_adapter.validate_json(row.effect))
            for row in rows
        ]

    def renew_leases(self, keys: Collection[str], until: datetime) -> int:
        if not keys:
            return 0
        outbox = t.outbox
        chosen = outbox.c.key.in_(list(keys))
        if self.dialect == "postgresql":
            # Rows locked now are being marked done by this worker's round: skipping them,
            # the renewal never waits for that round, so the two never wait for each other.
            chosen = outbox.c.id.in_(
                select(outbox.c.id).where(chosen).with_for_update(skip_locked=True)
            )
        query = update(outbox).where(chosen).values(lease_until=until)
        with self._write("renewing outbox leases") as conn:
            return conn.execute(query).rowcount

    def start_schedule(self, saga_name: str, at: datetime) -> datetime:
        row = {"saga_name": saga_name, "fired_until": at}
        with self._write("starting a schedule") as conn:
            build = lambda: self._insert_or_skip(t.schedules, row, "saga_name")  # noqa: E731
            self._bulk.execute(conn, "start_schedule", build, [row])
            fired_until = conn.scalar(
                select(t.schedules.c.fired_until).where(t.schedules.c.saga_name == saga_name)
            )
        assert isinstance(fired_until, datetime)
        return fired_until

    def next_due(self) -> datetime | None:
        with self._read("reading the next timer") as conn:
            due: datetime | None = conn.scalar(select(func.min(t.timers.c.due_at)))
        return due

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except ConcurrencyConflictError:
            raise
        except DBAPIError as exc:
            raise StoreError(f"{self._where}: {doing} failed: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"{self._where}: {doing} failed: {exc}") from exc

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        with self._translate(doing), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        with self._translate(doing), self.engine.connect() as conn:
            conn.execution_options(sagas_write=True)
            with conn.begin():
                yield conn


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "sagas.store:migrations")
    config.attributes["connection"] = conn
    return config
