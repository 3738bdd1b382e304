"""``sagas db``: the schema migrations."""

from __future__ import annotations

import click

from sagas.cli.common import db_option, reports_errors
from sagas.secrets import mask_url
from sagas.store.sql import SQLStore

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database schema: upgrade to the latest revision, or show the current one."""


@db.command()
@db_option()
@reports_errors
def upgrade(db: str) -> None:
    """Create or upgrade the schema (Alembic migrations)."""
    store = SQLStore(db, migrate=False)
    try:
        store.upgrade()
        click.echo(f"{mask_url(store.url)}: schema at revision {store.current_revision()}")
    finally:
        store.close()


@db.command()
@db_option()
@reports_errors
def current(db: str) -> None:
    """Print the schema revision of the database."""
    store = SQLStore(db, migrate=False)
    try:
        click.echo(store.current_revision() or "(empty: run `sagas db upgrade`)")
    finally:
        store.close()
