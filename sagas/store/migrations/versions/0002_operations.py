"""Operations: filter instances by failed step, correlation key and start time; outbox lag.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sagas.store.schema import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("saga_instances", sa.Column("failed_step", sa.String(200)))
    op.create_index("ix_saga_instances_key", "saga_instances", ["correlation_key"])
    op.create_index("ix_saga_instances_created", "saga_instances", ["created_at"])
    op.add_column("saga_outbox", sa.Column("created_at", UTCDateTime))
    _backfill_failed_steps()


def downgrade() -> None:
    op.drop_column("saga_outbox", "created_at")
    op.drop_index("ix_saga_instances_created", "saga_instances")
    op.drop_index("ix_saga_instances_key", "saga_instances")
    op.drop_column("saga_instances", "failed_step")


def _backfill_failed_steps() -> None:
    """Fill ``failed_step`` from the stored states (only instances where a step can have
    failed: a cancelled one too, when it was cancelled while compensating or failed), with the
    rule of ``SagaState.failed_step``, kept here as it was at 0002."""
    instances = sa.table(
        "saga_instances",
        sa.column("saga_id", sa.String),
        sa.column("status", sa.String),
        sa.column("state", sa.Text),
        sa.column("failed_step", sa.String),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(instances.c.saga_id, instances.c.state).where(
            instances.c.status.in_(["compensating", "compensated", "failed", "cancelled"])
        )
    )
    updates = []
    for saga_id, state in rows:
        steps = json.loads(state)["steps"]
        failed = [name for name, step in steps.items() if step["status"] == "failed"]
        undone = [name for name in failed if steps[name].get("undo_attempt", 0) > 0]
        first = next(iter(undone or failed), None)
        if first is not None:
            updates.append({"b_saga_id": saga_id, "failed_step": first})
    if updates:
        conn.execute(
            instances.update()
            .where(instances.c.saga_id == sa.bindparam("b_saga_id"))
            .values(failed_step=sa.bindparam("failed_step")),
            updates,
        )
