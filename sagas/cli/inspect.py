"""``sagas list`` and ``sagas show``: what the instances are doing."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from sagas.cli.common import console, db_option, open_store, reports_errors
from sagas.cli.filtering import build_filter, filter_options
from sagas.cli.terminal import shown
from sagas.cli.timeline import STATUS_STYLE, render_instance
from sagas.operations.documents import InstanceSummary, instance_json

__all__ = ["list_instances", "show"]


@click.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option()
@reports_errors
def list_instances(limit: int, offset: int, as_json: bool, db: str, **options: Any) -> None:
    """List saga instances, most recently updated first, a page at a time."""
    where = build_filter(options)
    store = open_store(db, read_only=True)
    try:
        records = store.list_instances(where, limit=limit, offset=offset)
        total = store.count_matching(where)
    finally:
        store.close()
    if as_json:
        page = {
            "total": total,
            "limit": limit,
            "offset": offset,
            "items": [InstanceSummary.of(r).to_dict() for r in records],
        }
        click.echo(json.dumps(page, indent=2))
        return
    span = f"{offset + 1}–{offset + len(records)} of {total}" if records else f"none of {total}"
    table = Table(title=shown(f"Saga instances ({span}; {where.describe()})"))
    table.add_column("saga id", no_wrap=True)
    for column in ("saga", "key", "status", "updated (UTC)", "reason"):
        table.add_column(column, overflow="fold")
    for r in records:
        state = r.state
        table.add_row(  # keys and reasons come from outside: shown escaped, never as markup
            state.saga_id,
            shown(f"{state.saga_name} v{state.definition_version}"),
            shown(state.correlation_key),
            Text(state.status.value, STATUS_STYLE.get(state.status, "")),
            f"{state.updated_at:%Y-%m-%d %H:%M:%S}",
            shown(state.reason or ""),
        )
    console().print(table)
    if offset + len(records) < total:
        console().print(f"more: --offset {offset + len(records)}")


@click.command()
@click.argument("saga_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@db_option()
@reports_errors
def show(saga_id: str, as_json: bool, db: str) -> None:
    """Show one saga instance: state, data, steps, pending timers and its full timeline."""
    store = open_store(db, read_only=True)
    try:
        record = store.instance(saga_id)
        log, timers = store.log(saga_id), store.timers(saga_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(instance_json(record, log, timers), indent=2))
    else:
        render_instance(console(), record, log, timers)
