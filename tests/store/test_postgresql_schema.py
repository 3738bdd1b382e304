"""On PostgreSQL the store lives in the schema its URL's ``search_path`` names: its tables and
Alembic's version table alike, so one database can hold several engines (and the tests give
each test a schema of its own)."""

import pytest
from sqlalchemy import text

from sagas.store import SQLStore
from sagas.store import schema as t


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_every_table_and_the_schema_revision_land_in_the_schema_of_the_url(
    database: str,
) -> None:
    store = SQLStore(database)
    try:
        with store.engine.connect() as conn:
            schema = conn.scalar(text("SELECT current_schema()"))
            rows = conn.execute(
                text(
                    "SELECT schemaname, tablename FROM pg_tables"
                    " WHERE schemaname IN (current_schema(), 'public')"
                )
            ).all()
        assert store.current_revision() == "0004"
    finally:
        store.close()
    assert schema is not None
    assert schema.startswith("t")
    assert sorted(rows) == sorted((schema, name) for name in [*t.metadata.tables, t.VERSION_TABLE])
