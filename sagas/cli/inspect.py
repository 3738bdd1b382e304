"""``sagas list`` and ``sagas show``: what the instances are doing."""

from __future__ import annotations

import json

import click
from rich.table import Table
from rich.text import Text

from sagas.cli.common import console, db_option, open_store, reports_errors
from sagas.cli.timeline import STATUS_STYLE, instance_json, render_instance
from sagas.engine.state import InstanceStatus

__all__ = ["list_instances", "show"]


@click.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in InstanceStatus]),
    help="Only instances with this status.",
)
@click.option("--saga", "saga_name", metavar="NAME", help="Only instances of this saga.")
@click.option(
    "--waiting-timer",
    is_flag=True,
    help="Only instances sleeping on a timer (a retry's back-off or a delay step).",
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option()
@reports_errors
def list_instances(
    status: str | None,
    saga_name: str | None,
    waiting_timer: bool,
    limit: int,
    offset: int,
    as_json: bool,
    db: str,
) -> None:
    """List saga instances, most recently updated first."""
    store = open_store(db, must_exist=True)
    try:
        records = store.list_instances(
            status=InstanceStatus(status) if status else None,
            saga_name=saga_name,
            sleeping=waiting_timer,
            limit=limit,
            offset=offset,
        )
    finally:
        store.close()
    if as_json:
        rows = [
            {
                "sagaId": r.state.saga_id,
                "saga": r.state.saga_name,
                "version": r.state.definition_version,
                "correlationKey": r.state.correlation_key,
                "status": r.state.status.value,
                "reason": r.state.reason,
                "startedAt": r.state.started_at.isoformat(),
                "updatedAt": r.state.updated_at.isoformat(),
            }
            for r in records
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Saga instances ({len(records)} shown)")
    table.add_column("saga id", no_wrap=True)
    for column in ("saga", "key", "status", "updated (UTC)", "reason"):
        table.add_column(column, overflow="fold")
    for r in records:
        state = r.state
        table.add_row(
            state.saga_id,
            f"{state.saga_name} v{state.definition_version}",
            state.correlation_key,
            Text(state.status.value, STATUS_STYLE[state.status]),
            f"{state.updated_at:%Y-%m-%d %H:%M:%S}",
            state.reason or "",
        )
    console().print(table)


@click.command()
@click.argument("saga_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@db_option()
@reports_errors
def show(saga_id: str, as_json: bool, db: str) -> None:
    """Show one saga instance: state, data, steps, pending timers and its full timeline."""
    store = open_store(db, must_exist=True)
    try:
        record = store.instance(saga_id)
        log, timers = store.log(saga_id), store.timers(saga_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(instance_json(record, log, timers), indent=2))
    else:
        render_instance(console(), record, log, timers)
