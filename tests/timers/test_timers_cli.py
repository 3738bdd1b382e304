"""What an operator sees of timers: ``sagas list --waiting-timer`` and ``sagas show``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from timer_checks import sagas_cli

from sagas import parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import TimerKind
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

# Five sagas, one instance each, in five situations once 10s have passed: waiting for a
# retry's back-off, sleeping in a delay, a command in flight (a timeout is pending, nobody
# sleeps), completed, and waiting for an event under a deadline.
SAGAS = {
    "backing_off": """
steps:
  - name: ask
    command: {type: Ask, success: Answered}
    timeout: 10s
    retry: {attempts: 3, initial_delay: 1h, max_delay: 1h, jitter: 0}
    pivot: true
""",
    "sleeping": """
steps:
  - name: nap
    delay: 1h
""",
    "in_flight": """
steps:
  - name: ask
    command: {type: Ask, success: Answered}
    timeout: 2h
    pivot: true
""",
    "done": """
steps:
  - name: work
    handler: work
    pivot: true
""",
    "awaiting": """
deadline: 1d
steps:
  - name: approve
    wait: {event: Approved}
""",
}
IDS = {name: saga_id_for(name, "k1") for name in SAGAS}


@pytest.fixture
def engine(database: str, clock: ManualClock) -> Iterator[Engine]:
    with saga_engine(database, clock=clock, handlers={"work": lambda context: None}) as engine:
        for name, steps in SAGAS.items():
            text = f"name: {name}\ntrigger: Start_{name}\ncorrelation: key\n{steps}"
            engine.register(parse_definition(text))
            engine.publish(Event.create(f"Start_{name}", {"key": "k1"}, at=clock.now()))
        engine.run_until_idle()
        clock.advance("10s")
        engine.run_until_idle()
        yield engine


def waiting(database: str) -> list[str]:
    rows = json.loads(sagas_cli("list", "--waiting-timer", "--json", "--db", database))["items"]
    return sorted(row["sagaId"] for row in rows)


def test_list_waiting_timer_shows_exactly_the_instances_sleeping_on_a_retry_or_delay(
    engine: Engine, database: str, clock: ManualClock
) -> None:
    assert waiting(database) == sorted([IDS["backing_off"], IDS["sleeping"]])
    table = sagas_cli("list", "--waiting-timer", "--db", database)
    assert IDS["backing_off"] in table
    assert IDS["sleeping"] in table
    for name in ("in_flight", "done", "awaiting"):
        assert IDS[name] not in table
    everyone = json.loads(sagas_cli("list", "--json", "--db", database))
    assert everyone["total"] == len(everyone["items"]) == len(SAGAS), (
        "the others are there, only not sleeping"
    )

    # An hour on, the retry is in flight (only its timeout is pending) and the nap is over.
    clock.advance("1h")
    engine.run_until_idle()
    assert waiting(database) == []
    step = engine.store.instance(IDS["backing_off"]).state.steps["ask"]
    assert (step.attempt, step.retry_due) == (2, None)


def test_show_prints_the_pending_timers_with_their_due_times(
    engine: Engine, database: str, clock: ManualClock
) -> None:
    saga_id = IDS["backing_off"]
    [retry] = engine.store.timers(saga_id)
    due = clock.now() + timedelta(hours=1)
    assert (retry.timer.kind, retry.timer.due_at) == (TimerKind.RETRY, due)

    text = sagas_cli("show", saga_id, "--db", database)
    assert "Pending timers" in text
    pending = text.split("Pending timers", 1)[1].split("Timeline", 1)[0]
    [row] = [line for line in pending.splitlines() if f"{due:%Y-%m-%d %H:%M:%S}" in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == [retry.timer.timer_id, "retry", "ask", "2", f"{due:%Y-%m-%d %H:%M:%S}"]

    document = json.loads(sagas_cli("show", saga_id, "--json", "--db", database))
    [timer] = document["timers"]
    assert timer["timer_id"] == retry.timer.timer_id
    assert (timer["kind"], timer["step"], timer["attempt"]) == ("retry", "ask", 2)
    assert datetime.fromisoformat(timer["due_at"]) == due


def test_show_lists_every_kind_of_pending_timer_and_none_once_ended(
    engine: Engine, database: str
) -> None:
    def pending(name: str) -> list[tuple[str, str | None]]:
        document = json.loads(sagas_cli("show", IDS[name], "--json", "--db", database))
        return [(timer["kind"], timer["step"]) for timer in document["timers"]]

    assert pending("sleeping") == [("delay", "nap")]
    assert pending("in_flight") == [("timeout", "ask")]
    assert pending("awaiting") == [("deadline", None)]
    assert pending("done") == []
    assert "Pending timers" not in sagas_cli("show", IDS["done"], "--db", database)
