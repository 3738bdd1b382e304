"""The initial schema: definitions, instances, event log, inbox, outbox, timers, schedules and
dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sagas.store.schema import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "saga_definitions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("registered_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "saga_instances",
        sa.Column("saga_id", sa.String(64), primary_key=True),
        sa.Column("saga_name", sa.String(200), nullable=False),
        sa.Column("definition_version", sa.Integer, nullable=False),
        sa.Column("correlation_key", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("saga_name", "correlation_key", name="uq_saga_instances_key"),
    )
    op.create_index("ix_saga_instances_status_updated", "saga_instances", ["status", "updated_at"])
    op.create_index("ix_saga_instances_name_updated", "saga_instances", ["saga_name", "updated_at"])
    op.create_index("ix_saga_instances_updated", "saga_instances", ["updated_at"])
    op.create_table(
        "saga_event_log",
        sa.Column("position", Position, primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("effects", sa.Text, nullable=False),
        sa.Column("ignored", sa.Boolean, nullable=False),
        sa.Column("recorded_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("saga_id", "seq", name="uq_saga_event_log_seq"),
    )
    op.create_table(
        "saga_inbox",
        sa.Column("position", Position, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False, unique=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("saga_id", sa.String(64)),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("queued", sa.Boolean, nullable=False),
        sa.Column("enqueued_at", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_saga_inbox_queued",
        "saga_inbox",
        ["position"],
        sqlite_where=sa.text("queued = 1"),
        postgresql_where=sa.text("queued"),
    )
    op.create_index(
        "ix_saga_inbox_queued_saga",
        "saga_inbox",
        ["saga_id", "position"],
        sqlite_where=sa.text("queued = 1"),
        postgresql_where=sa.text("queued"),
    )
    op.create_table(
        "saga_outbox",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("effect", sa.Text, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=False),
    )
    op.create_table(
        "saga_timers",
        sa.Column("timer_id", sa.String(300), primary_key=True),
        sa.Column("saga_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("timer", sa.Text, nullable=False),
    )
    op.create_index("ix_saga_timers_saga_id", "saga_timers", ["saga_id"])
    op.create_index("ix_saga_timers_due_at", "saga_timers", ["due_at"])
    op.create_table(
        "saga_schedules",
        sa.Column("saga_name", sa.String(200), primary_key=True),
        sa.Column("fired_until", UTCDateTime, nullable=False),
    )
    op.create_table(
        "saga_dead_letters",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200)),
        sa.Column("event_type", sa.String(200)),
        sa.Column("saga_id", sa.String(64)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "saga_dead_letters",
        "saga_schedules",
        "saga_timers",
        "saga_outbox",
        "saga_inbox",
        "saga_event_log",
        "saga_instances",
        "saga_definitions",
    ):
        op.drop_table(table)
