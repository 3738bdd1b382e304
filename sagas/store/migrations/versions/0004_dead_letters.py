"""Dead letters people can act on: where each came from, how often it was delivered, how its
payload is kept (text, or base64 for bytes that are not UTF-8), an index by time for the
``since``/``until`` filters, and (SQLite) ids never given twice.

Rows written before keep their text payload and are marked as from the engine's rounds
(``runtime``, one attempt).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    columns = (
        sa.Column("source", sa.String(50), nullable=False, server_default="runtime"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("encoding", sa.String(10), nullable=False, server_default="text"),
    )
    if op.get_bind().dialect.name == "sqlite":
        # AUTOINCREMENT: SQLite would otherwise give the id of the latest dead letter, once
        # replayed or dropped, to the next one, and an operator's "drop 7" could hit a message
        # they never saw. Adding it means copying the table.
        with op.batch_alter_table(
            "saga_dead_letters", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            for column in columns:
                batch.add_column(column)
    else:  # a PostgreSQL sequence never gives an id twice
        for column in columns:
            op.add_column("saga_dead_letters", column)
    op.create_index("ix_saga_dead_letters_created", "saga_dead_letters", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_saga_dead_letters_created", "saga_dead_letters")
    with op.batch_alter_table("saga_dead_letters") as batch:
        for name in ("encoding", "attempts", "source"):
            batch.drop_column(name)
