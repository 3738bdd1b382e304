"""Migration 0002 on SQLite and PostgreSQL: a database at 0001 holding instances is upgraded;
``failed_step`` is backfilled from the stored states by the rule of ``SagaState.failed_step``
(a compensation that gave up wins over the step that failed first), the outbox gets
``created_at``, two indexes come; and it downgrades to 0001 and upgrades again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from sagas.engine.state import InstanceStatus, SagaState, StepState, StepStatus
from sagas.store import schema as t
from sagas.store.dialect import lock_schema
from sagas.store.filters import InstanceFilter
from sagas.store.sql import SQLStore, _alembic_config

T0 = datetime(2030, 1, 1, tzinfo=UTC)
S = StepStatus


def state(saga_id: str, status: InstanceStatus, **steps: StepState) -> SagaState:
    return SagaState(
        saga_id=saga_id,
        saga_name="legacy",
        definition_version=1,
        correlation_key=saga_id,
        status=status,
        data={"id": saga_id},
        steps=steps,
        started_at=T0,
        updated_at=T0 + timedelta(minutes=len(saga_id)),
    )


STATES = {
    # The action of `deliver` failed first (it comes first), then the compensation of
    # `charge` gave up: the compensation wins.
    "gave-up": state(
        "gave-up",
        InstanceStatus.FAILED,
        deliver=StepState(status=S.FAILED, attempt=2, error="no driver"),
        charge=StepState(status=S.FAILED, attempt=1, undo_attempt=3, error="bank down"),
        reserve=StepState(status=S.COMPENSATED, attempt=1, undo_attempt=1),
    ),
    "after-pivot": state(
        "after-pivot",
        InstanceStatus.FAILED,
        reserve=StepState(status=S.SUCCEEDED, attempt=1),
        deliver=StepState(status=S.FAILED, attempt=3, error="timed out"),
    ),
    "compensated": state(
        "compensated",
        InstanceStatus.COMPENSATED,
        reserve=StepState(status=S.COMPENSATED, attempt=1, undo_attempt=1),
        pay=StepState(status=S.FAILED, attempt=1, error="declined"),
        ship=StepState(status=S.PENDING),
    ),
    "compensating": state(
        "compensating",
        InstanceStatus.COMPENSATING,
        reserve=StepState(status=S.COMPENSATING, attempt=1, undo_attempt=1),
        pay=StepState(status=S.FAILED, attempt=2, error="declined"),
    ),
    # Cancelled by an operator event while compensating (operator events were decided, at
    # 0001, when published): the engine writes its failed step, so the backfill must too.
    "cancelled-compensating": state(
        "cancelled-compensating",
        InstanceStatus.CANCELLED,
        reserve=StepState(status=S.COMPENSATING, attempt=1, undo_attempt=1),
        pay=StepState(status=S.FAILED, attempt=1, error="declined"),
    ).model_copy(update={"interrupted": InstanceStatus.COMPENSATING}),
    "cancelled-running": state(
        "cancelled-running",
        InstanceStatus.CANCELLED,
        reserve=StepState(status=S.RUNNING, attempt=1),
    ).model_copy(update={"interrupted": InstanceStatus.RUNNING}),
    "completed": state(
        "completed",
        InstanceStatus.COMPLETED,
        reserve=StepState(status=S.SUCCEEDED, attempt=2),
        pay=StepState(status=S.SUCCEEDED, attempt=1),
    ),
    "running": state(
        "running",
        InstanceStatus.RUNNING,
        reserve=StepState(status=S.SUCCEEDED, attempt=1),
        pay=StepState(status=S.RUNNING, attempt=1),
    ),
}
EXPECTED = {
    "gave-up": "charge",
    "after-pivot": "deliver",
    "compensated": "pay",
    "compensating": "pay",
    "cancelled-compensating": "pay",
    "cancelled-running": None,
    "completed": None,
    "running": None,
    "old-format": "second",
}


def old_format() -> dict[str, Any]:
    """A state as older code wrote it: steps without ``undo_attempt`` (nor other defaults)."""
    document = state("old-format", InstanceStatus.COMPENSATED).model_dump(mode="json")
    document["steps"] = {
        "first": {"status": "compensated"},
        "second": {"status": "failed", "attempt": 1},
        "third": {"status": "pending"},
    }
    return document


def rows() -> list[dict[str, Any]]:
    documents = [s.model_dump(mode="json") for s in STATES.values()] + [old_format()]
    return [
        {
            "saga_id": document["saga_id"],
            "saga_name": document["saga_name"],
            "definition_version": 1,
            "correlation_key": document["correlation_key"],
            "status": document["status"],
            "state": json.dumps(document),
            "version": 3,
            "created_at": T0,
            "updated_at": datetime.fromisoformat(document["updated_at"]),
        }
        for document in documents
    ]


@pytest.fixture
def at_0001(database: str) -> Iterator[SQLStore]:
    """A store on a database migrated to 0001 only, holding instances and an outbox row
    written the 0001 way."""
    store = SQLStore(database, migrate=False)
    try:
        assert store.current_revision() is None
        store.upgrade("0001")
        assert store.current_revision() == "0001"
        columns = {c["name"] for c in inspect(store.engine).get_columns("saga_instances")}
        assert "failed_step" not in columns
        with store.engine.begin() as conn:
            conn.execute(insert(t.instances), rows())
            conn.execute(
                insert(t.outbox),
                {
                    "saga_id": "running",
                    "key": "running/pay/1",
                    "effect": "{}",
                    "lease_until": T0,
                },
            )
        yield store
    finally:
        store.close()


def failed_steps(store: SQLStore) -> dict[str, str | None]:
    with store.engine.connect() as conn:
        found = conn.execute(select(t.instances.c.saga_id, t.instances.c.failed_step))
        return {str(saga_id): step for saga_id, step in found}


def shape(store: SQLStore) -> tuple[set[str], set[str], set[str]]:
    """Instance columns, outbox columns, instance index names."""
    inspector = inspect(store.engine)
    return (
        {c["name"] for c in inspector.get_columns("saga_instances")},
        {c["name"] for c in inspector.get_columns("saga_outbox")},
        {i["name"] or "" for i in inspector.get_indexes("saga_instances")},
    )


def downgrade(store: SQLStore, revision: str) -> None:
    with store.engine.begin() as conn:
        lock_schema(conn)
        command.downgrade(_alembic_config(conn), revision)


def test_upgrading_backfills_failed_step_from_the_stored_states(at_0001: SQLStore) -> None:
    store = at_0001
    store.upgrade("0002")

    assert store.current_revision() == "0002"
    assert failed_steps(store) == EXPECTED
    # The backfill follows the rule the engine writes with.
    for saga_id, stored in STATES.items():
        assert stored.failed_step == EXPECTED[saga_id]
    instances, outbox, indexes = shape(store)
    assert "failed_step" in instances
    assert "created_at" in outbox
    assert {"ix_saga_instances_key", "ix_saga_instances_created"} <= indexes
    # The store filters on it, and reads the older outbox row (no created_at: no lag known).
    found = store.list_instances(InstanceFilter(failed_step="pay"))
    assert sorted(r.saga_id for r in found) == [
        "cancelled-compensating",
        "compensated",
        "compensating",
    ]
    assert store.count_matching(InstanceFilter(failed_step="charge")) == 1
    backlog = store.backlog(T0 + timedelta(hours=1))
    assert (backlog.outbox, backlog.outbox_expired, backlog.outbox_oldest) == (1, 1, None)
    assert store.list_instances(InstanceFilter(key="old-format"))[0].state.failed_step == "second"


def test_downgrading_to_0001_and_upgrading_again(at_0001: SQLStore) -> None:
    store = at_0001
    store.upgrade("0002")
    upgraded = shape(store)

    downgrade(store, "0001")

    assert store.current_revision() == "0001"
    instances, outbox, indexes = shape(store)
    assert "failed_step" not in instances
    assert "created_at" not in outbox
    assert not {"ix_saga_instances_key", "ix_saga_instances_created"} & indexes
    with store.engine.connect() as conn:
        kept = conn.scalar(select(t.instances.c.saga_id).where(t.instances.c.saga_id == "gave-up"))
        assert kept == "gave-up", "the instances stay"

    store.upgrade("0002")

    assert store.current_revision() == "0002"
    assert shape(store) == upgraded
    assert failed_steps(store) == EXPECTED


def test_a_new_database_is_at_the_head_and_upgrading_again_changes_nothing(database: str) -> None:
    store = SQLStore(database)
    try:
        assert store.current_revision() == "0004"
        before = shape(store)
        store.upgrade()
        assert shape(store) == before
        assert "failed_step" in before[0]
    finally:
        store.close()
