"""Definition versions: a changed definition is a new version; instances keep theirs."""

from __future__ import annotations

from runtime_checks import assert_replays

from sagas import SagaDefinition, parse_definition
from sagas.engine.decide import saga_id_for
from sagas.engine.effects import PublishCommand
from sagas.engine.state import InstanceStatus
from sagas.events import Event
from sagas.handlers import Handler, StepContext
from sagas.runtime.engine import Engine
from sagas.testing import ManualClock, saga_engine

# Version 1 finishes with `notify_v1`; version 2 with `notify_v2`. The first step waits for a
# reply that the test sends, so an instance can be held open across the change.
DEFINITION = """
name: versioned
trigger: Start
correlation: id
steps:
  - name: hold
    command: {{type: Hold, success: Released}}
    compensation: {{handler: undo}}
  - name: notify
    handler: {handler}
    pivot: true
"""


def definition(handler: str) -> SagaDefinition:
    return parse_definition(DEFINITION.format(handler=handler))


class Notifications:
    def __init__(self, engine: Engine) -> None:
        self.sent: list[tuple[str, str]] = []
        for name in ("notify_v1", "notify_v2", "undo"):
            engine.handlers.register(self.handler(name), name)

    def handler(self, name: str) -> Handler:
        def notify(context: StepContext) -> None:
            self.sent.append((name, str(context.data["id"])))

        return notify


def start(engine: Engine, clock: ManualClock, key: str) -> str:
    engine.publish(Event.create("Start", {"id": key}, at=clock.now()))
    engine.run_until_idle()
    return saga_id_for("versioned", key)


def release(engine: Engine, clock: ManualClock, saga_id: str) -> None:
    [hold] = [e for e in engine.store.log(saga_id)[0].effects if isinstance(e, PublishCommand)]
    engine.publish(
        Event.create(
            "Released", {}, at=clock.now(), saga_id=saga_id, causation_id=hold.command.event_id
        )
    )
    engine.run_until_idle()


def test_a_changed_definition_is_version_2_and_the_same_content_keeps_its_version(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        assert engine.register(definition("notify_v1")).version == 1
        assert engine.register(definition("notify_v1")).version == 1
        assert engine.register(definition("notify_v2")).version == 2
        assert engine.register(definition("notify_v2")).version == 2
        stored = engine.store.definitions("versioned")
        assert [(d.version, d.steps[1].handler) for d in stored] == [
            (1, "notify_v1"),
            (2, "notify_v2"),
        ]


def test_an_instance_started_on_version_1_finishes_on_it_while_new_ones_use_version_2(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as engine:
        notifications = Notifications(engine)
        engine.register(definition("notify_v1"))
        old = start(engine, clock, "old")

        engine.register(definition("notify_v2"))
        new = start(engine, clock, "new")
        release(engine, clock, old)
        release(engine, clock, new)

        for saga_id, version in ((old, 1), (new, 2)):
            state = engine.store.instance(saga_id).state
            assert (state.definition_version, state.status) == (version, InstanceStatus.COMPLETED)
            assert_replays(engine.store, saga_id)
        assert sorted(notifications.sent) == [("notify_v1", "old"), ("notify_v2", "new")]


def test_after_a_restart_that_registers_only_version_2_old_instances_finish_on_version_1(
    database: str, clock: ManualClock
) -> None:
    with saga_engine(database, clock=clock) as before:
        Notifications(before)
        before.register(definition("notify_v1"))
        old = start(before, clock, "old")

    with saga_engine(database, clock=clock) as after:
        notifications = Notifications(after)
        assert after.register(definition("notify_v2")).version == 2
        release(after, clock, old)

        state = after.store.instance(old).state
        assert (state.definition_version, state.status) == (1, InstanceStatus.COMPLETED)
        assert notifications.sent == [("notify_v1", "old")]
        assert_replays(after.store, old)
