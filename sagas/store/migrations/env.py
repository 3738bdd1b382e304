"""Alembic environment: runs on the connection the store hands over (never a URL of its own)."""

from alembic import context
from sqlalchemy.engine import Connection

from sagas.store.schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through sagas (sagas db upgrade), which passes a connection")
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
