"""The tables, as SQLAlchemy Core metadata (the migrations create them; queries use these)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

__all__ = [
    "UTCDateTime",
    "dead_letters",
    "definitions",
    "event_log",
    "inbox",
    "instances",
    "metadata",
    "outbox",
    "schedules",
    "timers",
]

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants 64 bits for the log.
Position = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC everywhere."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:
            return value.replace(tzinfo=None)
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine stores aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


VERSION_TABLE = "saga_alembic_version"
"""Where Alembic records the schema revision."""

metadata = MetaData()

definitions = Table(
    "saga_definitions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("registered_at", UTCDateTime, nullable=False),
)

instances = Table(
    "saga_instances",
    metadata,
    Column("saga_id", String(64), primary_key=True),
    Column("saga_name", String(200), nullable=False),
    Column("definition_version", Integer, nullable=False),
    Column("correlation_key", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("state", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("failed_step", String(200)),  # SagaState.failed_step, for filtering (0002)
    UniqueConstraint("saga_name", "correlation_key", name="uq_saga_instances_key"),
    Index("ix_saga_instances_status_updated", "status", "updated_at"),
    Index("ix_saga_instances_name_updated", "saga_name", "updated_at"),
    Index("ix_saga_instances_updated", "updated_at"),
    Index("ix_saga_instances_key", "correlation_key"),
    Index("ix_saga_instances_created", "created_at"),
)

event_log = Table(
    "saga_event_log",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("saga_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("event", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("effects", Text, nullable=False),
    Column("ignored", Boolean, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime),  # when the engine received the event (0003)
    UniqueConstraint("saga_id", "seq", name="uq_saga_event_log_seq"),
)

inbox = Table(
    "saga_inbox",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("event_id", String(200), nullable=False, unique=True),
    Column("event_type", String(200), nullable=False),
    Column("saga_id", String(64)),
    Column("event", Text, nullable=False),
    Column("queued", Boolean, nullable=False),
    # When the engine received the event (its intake time, never the sender's timestamp).
    Column("enqueued_at", UTCDateTime, nullable=False),
    Index(
        "ix_saga_inbox_queued",
        "position",
        sqlite_where=text("queued = 1"),
        postgresql_where=text("queued"),
    ),
    # A worker never claims an event while an older one of the same instance waits.
    Index(
        "ix_saga_inbox_queued_saga",
        "saga_id",
        "position",
        sqlite_where=text("queued = 1"),
        postgresql_where=text("queued"),
    ),
    # A round fires no timer while an event received by its due time waits unclaimed (0003).
    Index(
        "ix_saga_inbox_queued_received",
        "enqueued_at",
        "position",
        sqlite_where=text("queued = 1"),
        postgresql_where=text("queued"),
    ),
)

outbox = Table(
    "saga_outbox",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("saga_id", String(64), nullable=False),
    Column("key", String(300), nullable=False, unique=True),
    Column("effect", Text, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime),  # when its decision committed: outbox lag (0002)
)
"""An effect stays in the outbox until it was carried out; its row is then deleted (the log
keeps every effect of every decision). The worker that wrote it holds a lease on it; when the
lease runs out (the worker died), another worker carries it out."""

timers = Table(
    "saga_timers",
    metadata,
    Column("timer_id", String(300), primary_key=True),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("due_at", UTCDateTime, nullable=False, index=True),
    Column("timer", Text, nullable=False),
)

schedules = Table(
    "saga_schedules",
    metadata,
    Column("saga_name", String(200), primary_key=True),
    Column("fired_until", UTCDateTime, nullable=False),
)
"""Per scheduled saga, the time up to which its runs were started (or deliberately skipped)."""

dead_letters = Table(
    "saga_dead_letters",
    metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("event_id", String(200)),
    Column("event_type", String(200)),
    Column("saga_id", String(64)),
    Column("payload", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Where it came from, how often it was delivered, how the payload is kept (0004).
    Column("source", String(50), nullable=False, server_default="runtime"),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("encoding", String(10), nullable=False, server_default="text"),
    Index("ix_saga_dead_letters_created", "created_at"),
    sqlite_autoincrement=True,  # an id is never given twice (0004)
)
"""What the engine could not use (see :class:`~sagas.store.records.DeadLetter`): kept until an
operator replays or drops it (``sagas dead-letters``)."""
