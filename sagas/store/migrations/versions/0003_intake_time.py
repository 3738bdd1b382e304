"""Intake time: when the engine received each event, in the log too; the index that lets a round
see whether an event received by a timer's due time still waits in the queue.

``saga_inbox.enqueued_at`` already holds a time per event; from 0003 on the engine writes its
own receipt time there (before, the sender's ``timestamp``), and every new log entry records it
in ``saga_event_log.received_at`` (``NULL`` in entries written before).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sagas.store.schema import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("saga_event_log", sa.Column("received_at", UTCDateTime))
    op.create_index(
        "ix_saga_inbox_queued_received",
        "saga_inbox",
        ["enqueued_at", "position"],
        sqlite_where=sa.text("queued = 1"),
        postgresql_where=sa.text("queued"),
    )


def downgrade() -> None:
    op.drop_index("ix_saga_inbox_queued_received", "saga_inbox")
    op.drop_column("saga_event_log", "received_at")
