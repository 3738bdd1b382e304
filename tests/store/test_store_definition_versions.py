"""Registered definition versions: content registered before keeps its version, whichever
version it was (a rollback or a rolling deploy mints none); the last content registered is what
new instances start on; ``sagas definitions`` shows how many instances each version still runs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from sagas import SagaDefinition, parse_definition
from sagas.cli import cli
from sagas.engine.decide import saga_id_for
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.runtime.engine import Engine
from sagas.store.base import DefinitionVersion
from sagas.testing import ManualClock, saga_engine

# The first step waits for an approval the test sends (or not), so instances stay running.
DEFINITION = """
name: versioned
{version}trigger: Start
correlation: id
steps:
  - name: approve
    wait: {{event: Approved}}
  - name: notify
    handler: {handler}
    pivot: true
"""


def definition(handler: str, version: int | None = None) -> SagaDefinition:
    declared = f"version: {version}\n" if version is not None else ""
    return parse_definition(DEFINITION.format(handler=handler, version=declared))


def handlers(engine: Engine) -> None:
    for name in ("notify_a", "notify_b", "notify_c"):
        engine.handlers.register(lambda context: None, name)


def start(engine: Engine, clock: ManualClock, key: str) -> int:
    """Start an instance; the definition version it started on."""
    engine.publish(Event.create("Start", {"id": key}, at=clock.now()))
    engine.run_until_idle()
    return engine.store.instance(saga_id_for("versioned", key)).state.definition_version


def approve(engine: Engine, clock: ManualClock, key: str) -> None:
    engine.publish(Event.create("Approved", {"id": key}, at=clock.now()))
    engine.run_until_idle()


def test_registering_an_earlier_version_again_reuses_it_and_new_instances_start_on_it(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        handlers(engine)
        assert engine.register(definition("notify_a")).version == 1
        assert start(engine, clock, "first") == 1
        assert engine.register(definition("notify_b")).version == 2
        assert start(engine, clock, "second") == 2

        assert engine.register(definition("notify_a")).version == 1  # the rollback

        assert start(engine, clock, "third") == 1
        stored = engine.store.definitions("versioned")
        assert [(d.version, d.steps[1].handler) for d in stored] == [
            (1, "notify_a"),
            (2, "notify_b"),
        ]


def test_a_worker_restarted_on_the_earlier_file_starts_new_instances_on_its_version(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as before:
        handlers(before)
        before.register(definition("notify_a"))
        before.register(definition("notify_b"))
        assert start(before, clock, "on-b") == 2

    with saga_engine(database, clock=clock) as after:
        handlers(after)
        assert after.register(definition("notify_a")).version == 1
        assert start(after, clock, "on-a") == 1
        approve(after, clock, "on-b")  # the instance on version 2 still finishes on it
        state = after.store.instance(saga_id_for("versioned", "on-b")).state
        assert (state.definition_version, state.status) == (2, InstanceStatus.COMPLETED)


def test_a_rolling_deploy_alternating_two_files_mints_no_versions(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        versions = [
            engine.register(definition(handler)).version for handler in ("notify_a", "notify_b") * 4
        ]
        assert versions == [1, 2] * 4
        assert [d.version for d in engine.store.definitions("versioned")] == [1, 2]


def test_new_content_after_a_rollback_is_the_next_version(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        registered = [
            engine.register(definition(handler)).version
            for handler in ("notify_a", "notify_b", "notify_a", "notify_c", "notify_b")
        ]
        assert registered == [1, 2, 1, 3, 2]


def test_the_declared_version_does_not_make_known_content_new(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        assert engine.register(definition("notify_a", version=1)).version == 1
        assert engine.register(definition("notify_b", version=5)).version == 5
        assert engine.register(definition("notify_a", version=7)).version == 1
        assert engine.register(definition("notify_c")).version == 6


def test_definition_versions_count_the_instances_not_ended_and_the_last_registration(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        handlers(engine)
        first = clock.now()
        engine.register(definition("notify_a"))
        for key in ("a1", "a2", "a3"):
            start(engine, clock, key)
        second = clock.advance("1m")
        engine.register(definition("notify_b"))
        start(engine, clock, "b1")
        approve(engine, clock, "a1")  # completed: no longer counted
        approve(engine, clock, "b1")

        assert engine.store.definition_versions() == [
            DefinitionVersion("versioned", 1, first, 2),
            DefinitionVersion("versioned", 2, second, 0),
        ]

        third = clock.advance("1m")
        engine.register(definition("notify_a"))  # the rollback
        start(engine, clock, "a4")
        assert engine.store.definition_versions("versioned") == [
            DefinitionVersion("versioned", 1, third, 3),
            DefinitionVersion("versioned", 2, second, 0),
        ]
        assert engine.store.definition_versions("other") == []


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def cells(out: str) -> list[list[str]]:
    rows = [line for line in out.splitlines() if "versioned" in line]
    return [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]


def test_sagas_definitions_shows_the_current_version_and_the_running_instances(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        handlers(engine)
        engine.register(definition("notify_a"))
        start(engine, clock, "a1")
        start(engine, clock, "a2")
        clock.advance("1m")
        engine.register(definition("notify_b"))
        start(engine, clock, "b1")
        approve(engine, clock, "b1")

    code, out = invoke("definitions", "--json", "--db", database)
    assert code == 0, out
    assert json.loads(out) == [
        {
            "saga": "versioned",
            "version": 1,
            "current": False,
            "lastRegistered": "2030-01-01T00:00:00+00:00",
            "trigger": "Start",
            "steps": 2,
            "running": 2,
        },
        {
            "saga": "versioned",
            "version": 2,
            "current": True,
            "lastRegistered": "2030-01-01T00:01:00+00:00",
            "trigger": "Start",
            "steps": 2,
            "running": 0,
        },
    ]

    code, out = invoke("definitions", "--db", database)
    assert code == 0, out
    assert cells(out) == [
        ["versioned", "1", "", "2030-01-01 00:00:00", "Start", "2", "2"],
        ["versioned", "2", "current", "2030-01-01 00:01:00", "Start", "2", "0"],
    ]

    with saga_engine(database, clock=clock) as rolled_back:  # a worker back on the first file
        clock.advance("1m")
        rolled_back.register(definition("notify_a"))
    code, out = invoke("definitions", "--db", database)
    assert cells(out) == [
        ["versioned", "1", "current", "2030-01-01 00:02:00", "Start", "2", "2"],
        ["versioned", "2", "", "2030-01-01 00:01:00", "Start", "2", "0"],
    ]

    code, out = invoke("definitions", "--json", "--saga", "other", "--db", database)
    assert (code, json.loads(out)) == (0, [])


def test_sagas_definitions_of_a_missing_database_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nothing.db"
    code, out = invoke("definitions", "--db", str(missing))
    assert code == 1
    assert f"no database at {missing}" in out
    assert not missing.exists()


def test_sagas_definitions_refuses_a_saga_name_that_breaks_the_rule_before_reading(
    database: str,
) -> None:
    for name in ("a\x00b", "order fulfilment", "Bestellung_für"):
        code, out = invoke("definitions", "--saga", name, "--db", database)
        assert code == 2, out
        assert "Invalid value for --saga" in out
        assert "is not a valid name: use only ASCII letters" in out
    code, out = invoke("definitions", "--saga", "x" * 100_000, "--db", database)
    assert code == 2, out
    assert "Invalid value for --saga: a saga name is at most 200 characters" in out
