"""What the docs use is exported, and the engine's own event types are all documented."""

from pathlib import Path

import sagas
from sagas.engine import internal, operator

ROOT = Path(__file__).resolve().parent.parent


def test_the_engines_own_event_types_are_exported_and_documented_with_their_fields() -> None:
    page = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    own = [sagas.HANDLER_SUCCEEDED, sagas.HANDLER_FAILED, sagas.TIMER_FIRED]
    own += list(sagas.OPERATOR_EVENT_TYPES)
    assert own[:3] == [internal.HANDLER_SUCCEEDED, internal.HANDLER_FAILED, internal.TIMER_FIRED]
    assert len(own) == len(set(own)) == 3 + len(sagas.OperatorAction)
    for event_type in own:
        assert event_type.startswith("sagas.")
        assert f"`{event_type}`" in page, f"{event_type} is not in docs/python.md"
    for field in ("timerId", "dueAt", "retryable", "result", "actor"):
        assert f"`{field}`" in page


def test_operator_requests_and_saga_ids_come_from_the_package() -> None:
    assert sagas.operator_event is operator.operator_event
    event = sagas.operator_event(
        sagas.OperatorAction.RETRY,
        sagas.saga_id_for("order_fulfillment", "o-1"),
        actor="alice",
        at=sagas.SystemClock().now(),
    )
    assert sagas.OPERATOR_EVENT_TYPES[event.event_type] is sagas.OperatorAction.RETRY
    assert event.saga_id == sagas.saga_id_for("order_fulfillment", "o-1")
    assert event.saga_id != sagas.saga_id_for("order_fulfillment", "o-2")
    assert sagas.ActionRequest(sagas.OperatorAction.CANCEL, actor="bob").reason is None
    assert {outcome.value for outcome in sagas.Outcome} >= {"applied", "refused"}
