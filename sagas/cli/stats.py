"""``sagas stats``: instances per saga and status, throughput, step latencies, backlog."""

from __future__ import annotations

import json

import click
from rich.table import Table

from sagas.cli.common import console, db_option, open_store, reports_errors
from sagas.cli.terminal import shown
from sagas.clock import SystemClock
from sagas.definitions.durations import format_duration
from sagas.engine.state import InstanceStatus
from sagas.operations import collect_stats
from sagas.operations.stats import parse_window

__all__ = ["stats"]


@click.command()
@click.option(
    "--window",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Throughput and latencies over this long before now (30s, 15m, 1h).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@db_option()
@reports_errors
def stats(window: str, as_json: bool, db: str) -> None:
    """Counts per saga and status; started and ended per second, step latency percentiles
    and the backlog (queue, outbox lag, overdue timers) over a window."""
    try:
        span = parse_window(window)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from None
    store = open_store(db, read_only=True)
    try:
        snapshot = collect_stats(store, SystemClock().now(), span)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(snapshot.to_dict(), indent=2))
        return
    out = console()
    label = format_duration(span)
    sagas = Table(title=f"Instances (throughput over the last {label})")
    sagas.add_column("saga")
    for status in InstanceStatus:
        sagas.add_column(status.value, justify="right")
    for column in ("total", "started/s", "ended/s"):
        sagas.add_column(column, justify="right")
    for saga in snapshot.sagas:
        sagas.add_row(
            shown(saga.saga),
            *(str(saga.counts.get(status, 0)) for status in InstanceStatus),
            str(saga.total),
            f"{snapshot.per_second(saga.started):.2f}",
            f"{snapshot.per_second(sum(saga.ended.values())):.2f}",
        )
    out.print(sagas)
    steps = Table(
        title=f"Step latency, first attempt to success (s), last {label}, "
        f"{snapshot.sampled} instances sampled"
    )
    for column in ("saga", "step", "count", "p50", "p90", "p99", "max"):
        steps.add_column(column, justify="left" if column in ("saga", "step") else "right")
    for step in snapshot.steps:
        steps.add_row(
            shown(step.saga),
            shown(step.step),
            str(step.count),
            *(f"{value:.3f}" for value in (step.p50, step.p90, step.p99, step.max)),
        )
    out.print(steps)
    backlog = snapshot.to_dict()["backlog"]
    out.print(
        f"Backlog: {backlog['queued']} queued events; {backlog['outbox']} effects in the outbox "
        f"(oldest {backlog['outboxLagSeconds']:.1f} s, {backlog['outboxExpired']} with an "
        f"expired lease); {backlog['timers']} timers ({backlog['timersOverdue']} overdue, "
        f"latest by {backlog['timerLatenessSeconds']:.1f} s)"
    )
