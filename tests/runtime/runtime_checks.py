"""What the runtime tests check about stored instances: replay, compensation order, orders."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from sagas.engine.decide import decide
from sagas.engine.effects import InvokeHandler, PublishCommand
from sagas.engine.state import SagaState, StepStatus
from sagas.events import Event
from sagas.store.base import Store
from sagas.store.records import LogEntry

ROOT = Path(__file__).resolve().parents[2]
ORDER_DEFINITION = ROOT / "definitions" / "order_fulfillment.yaml"
_SUCCEEDED_ONCE = (StepStatus.SUCCEEDED, StepStatus.COMPENSATING, StepStatus.COMPENSATED)


def order_created(order_id: str, at: datetime, event_id: str | None = None) -> Event:
    """An ``OrderCreated`` trigger of the order saga."""
    return Event.create(
        "OrderCreated",
        {"orderId": order_id, "items": [{"sku": "sku-1", "quantity": 1}], "address": "1 Road"},
        at=at,
        event_id=event_id,
    )


def states(store: Store, saga_id: str) -> list[SagaState]:
    """The instance's states rebuilt from its log alone: ``decide`` folded over its events, each
    at the time it was recorded, starting from nothing (one state per log entry)."""
    stored = store.instance(saga_id).state
    definition = store.definition(stored.saga_name, stored.definition_version)
    folded: list[SagaState] = []
    state: SagaState | None = None
    for entry in store.log(saga_id):
        state = decide(definition, state, entry.event, entry.recorded_at).state
        folded.append(state)
    assert folded, f"saga {saga_id} has no log"
    return folded


def assert_replays(store: Store, saga_id: str) -> None:
    """The stored state is exactly what replaying the instance's log gives."""
    stored = store.instance(saga_id).state
    rebuilt = states(store, saga_id)[-1]
    if rebuilt != stored:
        replayed, kept = rebuilt.model_dump(), stored.model_dump()
        differ = [key for key in kept if replayed[key] != kept[key]]
        detail = f"replayed {rebuilt!r}\nstored   {stored!r}"
        raise AssertionError(f"saga {saga_id}: replay differs in {differ}\n{detail}")


def compensations_started(log: list[LogEntry]) -> list[str]:
    """The steps of every compensation attempt the log shows started, in order."""
    return [
        effect.step
        for entry in log
        for effect in entry.effects
        if isinstance(effect, InvokeHandler | PublishCommand) and effect.compensating
    ]


def completion_order(store: Store, saga_id: str) -> list[str]:
    """Steps in the order they succeeded, read from the log (replayed one event at a time)."""
    order: list[str] = []
    for state in states(store, saga_id):
        for name, step in state.steps.items():
            if step.status in _SUCCEEDED_ONCE and name not in order:
                order.append(name)
    return order


def assert_compensated_in_reverse(store: Store, saga_id: str) -> None:
    """Compensations started exactly for the completed steps that have one, each once (none
    of them fails here), in reverse order of completion."""
    stored = store.instance(saga_id).state
    definition = store.definition(stored.saga_name, stored.definition_version)
    undoable = [
        name
        for name in reversed(completion_order(store, saga_id))
        if definition.step(name).compensation is not None
    ]
    assert compensations_started(store.log(saga_id)) == undoable, saga_id
    for name in undoable:
        assert stored.steps[name].status == StepStatus.COMPENSATED, (saga_id, name)


class WorkerProcess:
    """``sagas worker ARGS`` in a process of its own, run from ``folder`` with its output in
    ``folder/worker.log``: started, killed, started again."""

    def __init__(self, folder: Path, args: list[str]) -> None:
        self.folder, self.args = folder, args
        self.output = folder / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-c", "from sagas.cli import main; main()", "worker"]
        with self.output.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.args], cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(how)
        self.process.wait(timeout=30)
        self.process = None

    def tail(self) -> str:
        return self.output.read_text(errors="replace")[-3000:]
