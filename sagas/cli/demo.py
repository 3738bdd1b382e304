"""``sagas demo``: the order saga with simulated participants on embedded SQLite."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from importlib import resources

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sagas.cli.common import console, open_store, reports_errors
from sagas.cli.timeline import render_timeline
from sagas.clock import SystemClock
from sagas.definitions.loader import parse_definition
from sagas.demo.participants import Participants
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.store.filters import InstanceFilter
from sagas.store.records import InstanceRecord

__all__ = ["demo"]

DEMO_DATABASE = "sagas-demo.db"


def order_definition_text() -> str:
    """The order saga shipped with the package (the same file as definitions/)."""
    return resources.files("sagas.demo").joinpath("order_fulfillment.yaml").read_text("utf-8")


@click.command()
@click.option("--orders", type=click.IntRange(1, 1_000_000), default=500, show_default=True)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.2,
    show_default=True,
    help="Share of orders that fail (out of stock, card declined, or undeliverable).",
)
@click.option(
    "--db",
    default=DEMO_DATABASE,
    show_default=True,
    metavar="URL_OR_PATH",
    help="Database: a SQLAlchemy URL or a SQLite file path.",
)
@click.option("--seed", type=int, default=0, help="Seed of the simulated failures.")
@reports_errors
def demo(orders: int, fail_rate: float, db: str, seed: int) -> None:
    """Run the order saga with simulated inventory, payment and shipping services."""
    out = console()
    definition = parse_definition(order_definition_text(), "sagas/demo/order_fulfillment.yaml")
    engine = Engine(open_store(db), clock=SystemClock(), batch_size=500)
    participants = Participants(fail_rate=fail_rate, seed=seed)
    participants.subscribe(engine.bus)
    participants.register(engine.handlers)
    engine.register(definition)
    run = uuid.uuid4().hex[:6]  # order ids of this run: the demo can run again on one database
    finished: Counter[InstanceStatus] = Counter()
    engine.on_finish.append(lambda state: finished.update([state.status]))
    try:
        now = engine.clock.now()
        engine.store.enqueue(
            [
                Event.create(
                    "OrderCreated",
                    {
                        "orderId": f"{run}-{n:06d}",
                        "items": [{"sku": f"sku-{n % 17}", "quantity": 1 + n % 3}],
                        "amount": round(10 + (n * 7.31) % 190, 2),
                        "address": f"{n} Demo Street",
                    },
                    at=now,
                )
                for n in range(orders)
            ],
            received_at=now,
        )
        started = time.perf_counter()
        with Progress(
            TextColumn("[bold]orders"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=out,
        ) as progress:
            task = progress.add_task("orders", total=orders)
            while engine.run_once():
                progress.update(task, completed=sum(finished.values()))
            progress.update(task, completed=sum(finished.values()))
        elapsed = time.perf_counter() - started
        summary = Table(title=f"{orders} orders in {elapsed:.2f}s on {db}")
        for column in ("completed", "compensated", "failed", "sagas/s"):
            summary.add_column(column, justify="right")
        summary.add_row(
            str(finished[InstanceStatus.COMPLETED]),
            str(finished[InstanceStatus.COMPENSATED]),
            str(finished[InstanceStatus.FAILED]),
            f"{sum(finished.values()) / elapsed:,.0f}",
        )
        out.print(summary)
        example = _example_compensated(engine, run)
        if example is not None:
            out.print(f"\nTimeline of compensated order {example.state.correlation_key}:")
            out.print(render_timeline(engine.store.log(example.saga_id)))
            out.print(f"Inspect it: sagas show {example.saga_id} --db {db}")
        out.print(f"List them all: sagas list --db {db}")
        out.print(f"See them in the dashboard: sagas serve --db {db} --read-only")
    finally:
        engine.close()


def _example_compensated(engine: Engine, run: str) -> InstanceRecord | None:
    """A compensated order of this run, preferring one that undid two steps."""
    candidates = engine.store.list_instances(
        InstanceFilter(status=(InstanceStatus.COMPENSATED,)), limit=1000
    )
    ours = [r for r in candidates if r.state.correlation_key.startswith(run)]
    both = [r for r in ours if r.state.steps["take_payment"].status == StepStatus.COMPENSATED]
    return next(iter(both or ours), None)
