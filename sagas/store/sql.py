"""The store on SQLAlchemy Core: a SQLite file by default, PostgreSQL for production.

Dialect differences live in the small hooks at the bottom (connection set-up, insert-or-skip).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from sagas.definitions.model import SagaDefinition
from sagas.engine.effects import (
    ScheduleTimer,
    TimerKind,
    effects_adapter,
    outbox_adapter,
)
from sagas.engine.state import InstanceStatus, SagaState
from sagas.events import Event
from sagas.store import schema as t
from sagas.store.base import ConcurrencyConflictError, Store, StoreError, UnknownSagaError
from sagas.store.bulk import BulkStatements
from sagas.store.records import (
    Changes,
    DeadLetter,
    InstanceRecord,
    LogEntry,
    OutboxItem,
    QueuedEvent,
    TimerRecord,
    outbox_key,
)

__all__ = ["DEFAULT_DATABASE_URL", "SQLStore", "database_url"]

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


class SQLStore(Store):
    """A :class:`Store` on one database URL; the schema is migrated (Alembic) on first use."""

    def __init__(self, url: str = DEFAULT_DATABASE_URL, *, migrate: bool = True) -> None:
        self.url = database_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._where = parsed.render_as_string(hide_password=True)
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = _create_engine(self.url, self.dialect)
        except (ImportError, ArgumentError) as exc:
            extra = (
                " (pip install 'sagas-engine[postgres]')" if self.dialect == "postgresql" else ""
            )
            raise StoreError(f"{self._where}: cannot open: {exc}{extra}") from None
        self._bulk = BulkStatements(self.engine.dialect)
        if migrate:
            self.upgrade()

    # -- schema -----------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision``."""
        with self._translate("migrating"), self.engine.begin() as conn:
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
            latest = conn.execute(
                select(t.definitions.c.version, t.definitions.c.digest)
                .where(t.definitions.c.name == definition.name)
                .order_by(t.definitions.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.digest == digest:
                return int(latest.version)
            version = max(definition.version, (latest.version + 1) if latest else 1)
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

    # -- queue and deciding -----------------------------------------------------------------

    def enqueue(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        with self._write("queueing events") as conn:
            return self._enqueue(conn, events)

    def seen(self, event_ids: Collection[str]) -> set[str]:
        if not event_ids:
            return set()
        query = select(t.inbox.c.event_id).where(t.inbox.c.event_id.in_(list(event_ids)))
        with self._read("reading the inbox") as conn:
            return set(conn.scalars(query))

    def queued(self, limit: int) -> list[QueuedEvent]:
        query = (
            select(t.inbox.c.position, t.inbox.c.event)
            .where(t.inbox.c.queued)
            .order_by(t.inbox.c.position)
            .limit(limit)
        )
        with self._read("reading the queue") as conn:
            rows = conn.execute(query).all()
        return [QueuedEvent(row.position, Event.model_validate_json(row.event)) for row in rows]

    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]:
        if not saga_ids:
            return {}
        query = select(t.instances.c.state, t.instances.c.version).where(
            t.instances.c.saga_id.in_(list(saga_ids))
        )
        with self._read("reading instances") as conn:
            records = [_instance(row) for row in conn.execute(query)]
        return {record.saga_id: record for record in records}

    def find_instance(self, saga_name: str, correlation_key: str) -> InstanceRecord | None:
        query = select(t.instances.c.state, t.instances.c.version).where(
            t.instances.c.saga_name == saga_name,
            t.instances.c.correlation_key == correlation_key,
        )
        with self._read("finding an instance") as conn:
            row = conn.execute(query).first()
        return None if row is None else _instance(row)

    def apply(self, changes: Changes) -> None:
        try:
            with self._write("committing a decision") as conn:
                self._apply(conn, changes)
        except IntegrityError as exc:
            raise ConcurrencyConflictError(
                f"{self._where}: another writer got there first"
            ) from exc

    def _apply(self, conn: Connection, changes: Changes) -> None:
        run = self._bulk.execute
        if changes.created:
            rows = [_instance_row(record) for record in changes.created]
            run(conn, "create_instance", lambda: _insert(t.instances, rows[0]), rows)
        if changes.updated:
            rows = [_instance_row(r) | {"expected": v} for r, v in changes.updated]
            if run(conn, "update_instance", _update_instance, rows) != len(rows):
                raise ConcurrencyConflictError(
                    f"{self._where}: an instance changed under this worker"
                )
        if changes.log:
            rows = [_log_row(entry) for entry in changes.log]
            run(conn, "append_log", lambda: _insert(t.event_log, rows[0]), rows)
        if changes.processed:
            rows = [{"b_position": position} for position in changes.processed]
            run(conn, "processed", _mark_processed, rows)
        if changes.outbox:
            rows = [
                {
                    "saga_id": saga_id,
                    "key": outbox_key(effect),
                    "effect": effect.model_dump_json(by_alias=True),
                }
                for saga_id, effect in changes.outbox
            ]
            run(conn, "outbox", lambda: self._insert_or_skip(t.outbox, rows[0], "key"), rows)
        if changes.outbox_done:
            rows = [{"b_key": key} for key in changes.outbox_done]
            run(conn, "outbox_done", _mark_outbox_done, rows)
        if changes.timers_removed:
            rows = [{"b_timer_id": timer_id} for timer_id in changes.timers_removed]
            run(conn, "remove_timer", _remove_timer, rows)
        if changes.timers:
            rows = [
                {
                    "timer_id": record.timer.timer_id,
                    "saga_id": record.saga_id,
                    "kind": record.timer.kind,
                    "due_at": record.timer.due_at,
                    "timer": record.timer.model_dump_json(),
                }
                for record in changes.timers
            ]
            build = lambda: self._insert_or_skip(t.timers, rows[0], "timer_id")  # noqa: E731
            run(conn, "timer", build, rows)
        if changes.received:
            # Decided without being queued: only the id is kept, for deduplication.
            rows = [_inbox_row(event, queued=False) for event in changes.received]
            run(conn, "received", lambda: _insert(t.inbox, rows[0]), rows)
        if changes.schedules:
            rows = [
                {"b_name": name, "fired_until": until} for name, until in changes.schedules.items()
            ]
            run(conn, "schedule_fired", _schedule_fired, rows)
        if changes.dead_letters:
            conn.execute(
                insert(t.dead_letters),
                [
                    {
                        "event_id": letter.event_id,
                        "event_type": letter.event_type,
                        "saga_id": letter.saga_id,
                        "payload": letter.payload,
                        "reason": letter.reason,
                        "created_at": letter.created_at,
                    }
                    for letter in changes.dead_letters
                ],
            )

    def _enqueue(self, conn: Connection, events: Sequence[Event]) -> int:
        rows = [_inbox_row(event, queued=True) for event in events]
        build = lambda: self._insert_or_skip(t.inbox, rows[0], "event_id")  # noqa: E731
        return max(self._bulk.execute(conn, "enqueue", build, rows), 0)

    def _insert_or_skip(self, table: Table, row: Mapping[str, Any], key: str) -> Executable:
        """INSERT of ``row``'s columns that skips rows whose unique ``key`` already exists."""
        values: dict[str, Any] = {column: bindparam(column) for column in row}
        if self.dialect == "sqlite":
            return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=[key])
        if self.dialect == "postgresql":
            statement = postgresql.insert(table).values(values)
            return statement.on_conflict_do_nothing(index_elements=[key])
        raise StoreError(f"unsupported database {self.dialect!r}: use SQLite or PostgreSQL")

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

    def due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        query = (
            select(t.timers.c.saga_id, t.timers.c.timer)
            .where(t.timers.c.due_at <= now)
            .order_by(t.timers.c.due_at)
            .limit(limit)
        )
        with self._read("reading due timers") as conn:
            return [_timer(row) for row in conn.execute(query)]

    def schedules(self) -> dict[str, datetime]:
        query = select(t.schedules.c.saga_name, t.schedules.c.fired_until)
        with self._read("reading schedules") as conn:
            return {row.saga_name: row.fired_until for row in conn.execute(query)}

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

    # -- reading, for people ----------------------------------------------------------------

    def instance(self, saga_id: str) -> InstanceRecord:
        record = self.instances([saga_id]).get(saga_id)
        if record is None:
            raise UnknownSagaError(saga_id)
        return record

    def list_instances(
        self,
        *,
        status: InstanceStatus | None = None,
        saga_name: str | None = None,
        sleeping: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[InstanceRecord]:
        query = select(t.instances.c.state, t.instances.c.version)
        if sleeping:
            timers = t.timers
            asleep = select(timers.c.saga_id).where(
                timers.c.kind.in_([TimerKind.RETRY, TimerKind.DELAY])
            )
            query = query.where(t.instances.c.saga_id.in_(asleep))
        if status is not None:
            query = query.where(t.instances.c.status == InstanceStatus(status).value)
        if saga_name is not None:
            query = query.where(t.instances.c.saga_name == saga_name)
        query = query.order_by(t.instances.c.updated_at.desc(), t.instances.c.saga_id)
        with self._read("listing instances") as conn:
            return [_instance(row) for row in conn.execute(query.limit(limit).offset(offset))]

    def count_instances(self) -> dict[tuple[str, InstanceStatus], int]:
        query = select(t.instances.c.saga_name, t.instances.c.status, func.count()).group_by(
            t.instances.c.saga_name, t.instances.c.status
        )
        with self._read("counting instances") as conn:
            return {(name, InstanceStatus(status)): n for name, status, n in conn.execute(query)}

    def log(self, saga_id: str) -> list[LogEntry]:
        query = select(t.event_log).where(t.event_log.c.saga_id == saga_id)
        with self._read("reading a log") as conn:
            return [_log_entry(row) for row in conn.execute(query.order_by(t.event_log.c.seq))]

    def log_from(self, position: int, limit: int) -> list[LogEntry]:
        query = (
            select(t.event_log)
            .where(t.event_log.c.position > position)
            .order_by(t.event_log.c.position)
            .limit(limit)
        )
        with self._read("reading the log") as conn:
            return [_log_entry(row) for row in conn.execute(query)]

    def timers(self, saga_id: str | None = None) -> list[TimerRecord]:
        query = select(t.timers.c.saga_id, t.timers.c.timer).order_by(t.timers.c.due_at)
        if saga_id is not None:
            query = query.where(t.timers.c.saga_id == saga_id)
        with self._read("reading timers") as conn:
            return [_timer(row) for row in conn.execute(query)]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        query = select(t.dead_letters).order_by(t.dead_letters.c.id.desc()).limit(limit)
        with self._read("reading dead letters") as conn:
            return [
                DeadLetter(
                    reason=row.reason,
                    payload=row.payload,
                    event_id=row.event_id,
                    event_type=row.event_type,
                    saga_id=row.saga_id,
                    created_at=row.created_at,
                    id=row.id,
                )
                for row in conn.execute(query)
            ]

    def queue_depth(self) -> int:
        with self._read("counting the queue") as conn:
            return int(conn.scalar(select(func.count()).where(t.inbox.c.queued)) or 0)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (ConcurrencyConflictError, IntegrityError):
            raise
        except OperationalError as exc:
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


# -- rows <-> records -------------------------------------------------------------------------


def _insert(table: Table, row: Mapping[str, Any]) -> Executable:
    return insert(table).values({column: bindparam(column) for column in row})


def _update_instance() -> Executable:
    return (
        update(t.instances)
        .where(t.instances.c.saga_id == bindparam("saga_id"))
        .where(t.instances.c.version == bindparam("expected"))
        .values(
            status=bindparam("status"),
            state=bindparam("state"),
            version=bindparam("version"),
            updated_at=bindparam("updated_at"),
        )
    )


def _mark_processed() -> Executable:
    inbox = t.inbox
    return update(inbox).where(inbox.c.position == bindparam("b_position")).values(queued=False)


def _mark_outbox_done() -> Executable:
    outbox = t.outbox
    return delete(outbox).where(outbox.c.key == bindparam("b_key"))


def _schedule_fired() -> Executable:
    schedules = t.schedules
    return (
        update(schedules)
        .where(schedules.c.saga_name == bindparam("b_name"))
        .where(schedules.c.fired_until < bindparam("fired_until"))
        .values(fired_until=bindparam("fired_until"))
    )


def _remove_timer() -> Executable:
    return delete(t.timers).where(t.timers.c.timer_id == bindparam("b_timer_id"))


def _inbox_row(event: Event, *, queued: bool) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event": event.to_json() if queued else "",
        "queued": queued,
        "enqueued_at": event.timestamp,
    }


def _instance(row: Any) -> InstanceRecord:
    return InstanceRecord(SagaState.model_validate_json(row.state), row.version)


def _instance_row(record: InstanceRecord) -> dict[str, Any]:
    state = record.state
    return {
        "saga_id": state.saga_id,
        "saga_name": state.saga_name,
        "definition_version": state.definition_version,
        "correlation_key": state.correlation_key,
        "status": state.status.value,
        "state": state.model_dump_json(),
        "version": record.version,
        "created_at": state.started_at,
        "updated_at": state.updated_at,
    }


def _log_row(entry: LogEntry) -> dict[str, Any]:
    return {
        "saga_id": entry.saga_id,
        "seq": entry.seq,
        "event_id": entry.event.event_id,
        "event_type": entry.event.event_type,
        "event": entry.event.to_json(),
        "note": entry.note,
        "effects": effects_adapter.dump_json(list(entry.effects), by_alias=True).decode(),
        "ignored": entry.ignored,
        "recorded_at": entry.recorded_at,
    }


def _log_entry(row: Any) -> LogEntry:
    return LogEntry(
        saga_id=row.saga_id,
        seq=row.seq,
        event=Event.model_validate_json(row.event),
        note=row.note,
        effects=tuple(effects_adapter.validate_json(row.effects)),
        ignored=row.ignored,
        recorded_at=row.recorded_at,
        position=row.position,
    )


def _timer(row: Any) -> TimerRecord:
    return TimerRecord(row.saga_id, ScheduleTimer.model_validate_json(row.timer))


# -- dialect hooks ----------------------------------------------------------------------------


def _create_engine(url: str, dialect: str) -> Engine:
    if dialect != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so writes can BEGIN IMMEDIATE (no lock
        # upgrade deadlocks between processes) and reads stay plain deferred transactions.
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


SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",  # durable across process crashes; WAL keeps it consistent
    "foreign_keys=ON",
    "busy_timeout=30000",
    "temp_store=MEMORY",
    "cache_size=-65536",
)
"""Connection settings of every SQLite connection (the benchmarks' raw baseline uses them too)."""


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", "sagas.store:migrations")
    config.attributes["connection"] = conn
    return config
