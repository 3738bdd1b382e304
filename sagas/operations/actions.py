"""Carrying out operator actions: one instance, or every instance a filter selects.

An action is decided at once, in a transaction of its own, exactly as a worker decides an
event (same lock, same ``decide``, same log entry, outbox rows and timers), so the caller learns
what really happened: applied (and what the decision did) or refused (and why). What the
decision asks to do (run a handler, publish a command) is left in the outbox with its lease
already expired: the next worker round carries it out. ``dry_run`` decides without writing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sagas.clock import Clock, SystemClock
from sagas.definitions.model import SagaDefinition
from sagas.engine.decide import decide
from sagas.engine.operator import OperatorAction, operator_event
from sagas.engine.state import InstanceStatus
from sagas.observability.logs import saga_fields
from sagas.runtime.batch import Batch, Working
from sagas.store.base import ConcurrencyConflictError, Store, UnknownSagaError
from sagas.store.filters import InstanceFilter
from sagas.store.records import InstanceRecord, Received

__all__ = ["ActionRequest", "ActionResult", "Operations", "Outcome"]

log = logging.getLogger("sagas.operations")

BULK_PAGE = 200
"""Instances selected per query by a bulk action."""
CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class ActionRequest:
    """An operator action with who asks, why, and (for retry and skip) the step and data."""

    action: OperatorAction
    actor: str
    reason: str | None = None
    step: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Outcome(StrEnum):
    """What an action did to one instance."""

    APPLIED = "applied"
    REFUSED = "refused"
    WOULD_APPLY = "would apply"  # dry run
    NOT_FOUND = "not found"


@dataclass(frozen=True)
class ActionResult:
    """What happened to one instance: the outcome, the statuses before and after, and the
    decision's note (what it did, or why it refused)."""

    saga_id: str
    outcome: Outcome
    note: str
    status_before: InstanceStatus | None = None
    status_after: InstanceStatus | None = None
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data (the CLI's ``--json`` and the HTTP API)."""
        return {
            "sagaId": self.saga_id,
            "outcome": self.outcome.value,
            "note": self.note,
            "statusBefore": self.status_before and self.status_before.value,
            "statusAfter": self.status_after and self.status_after.value,
            "eventId": self.event_id,
        }


class Operations:
    """Operator actions on the instances of one store."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self._definitions: dict[tuple[str, int], SagaDefinition] = {}

    def act(self, saga_id: str, request: ActionRequest, *, dry_run: bool = False) -> ActionResult:
        """Apply ``request`` to instance ``saga_id``.

        :raises UnknownSagaError: when there is no such instance.
        """
        for _ in range(CONFLICT_RETRIES):
            try:
                return self._act(saga_id, request, dry_run)
            except ConcurrencyConflictError:
                continue  # a worker moved the instance meanwhile: decide on its new state
        return self._act(saga_id, request, dry_run)

    def act_many(
        self, where: InstanceFilter, request: ActionRequest, *, dry_run: bool = False
    ) -> list[ActionResult]:
        """Apply ``request`` to every instance ``where`` selects now; one result each.

        The selection is taken first, so instances the actions move do not shift the pages.
        """
        return [self._act_or_report(saga_id, request, dry_run) for saga_id in self.select(where)]

    def select(self, where: InstanceFilter) -> list[str]:
        """The ids of the instances ``where`` selects, most recently updated first."""
        return list(self._pages(where))

    def _pages(self, where: InstanceFilter) -> Iterator[str]:
        offset = 0
        while True:
            page = self.store.instance_ids(where, limit=BULK_PAGE, offset=offset)
            yield from page
            if len(page) < BULK_PAGE:
                return
            offset += BULK_PAGE

    def _act_or_report(self, saga_id: str, request: ActionRequest, dry_run: bool) -> ActionResult:
        try:
            return self.act(saga_id, request, dry_run=dry_run)
        except UnknownSagaError as exc:
            return ActionResult(saga_id, Outcome.NOT_FOUND, str(exc))

    def _act(self, saga_id: str, request: ActionRequest, dry_run: bool) -> ActionResult:
        now = self.clock.now()
        event = operator_event(
            request.action,
            saga_id,
            actor=request.actor,
            at=now,
            reason=request.reason,
            step=request.step,
            data=request.data,
        )
        if dry_run:
            record = self.store.instance(saga_id)
            decision = decide(self._definition(record), record.state, event, now)
            outcome = Outcome.REFUSED if decision.ignored else Outcome.WOULD_APPLY
            return _result(record, decision.state.status, outcome, decision.note, None)
        with self.store.round() as tx:
            version = tx.versions({saga_id}).get(saga_id)
            if version is None:
                raise UnknownSagaError(saga_id)
            record = tx.instances({saga_id})[saga_id]
            decision = decide(self._definition(record), record.state, event, now)
            batch = Batch(now=now)
            working = Working(decision.state, version + 1, version)
            batch.record(event, working, decision)
            changes = batch.close()
            changes.received = [Received(event, now)]
            changes.lease_until = changes.written_at = now  # any worker carries them out
            tx.apply(changes)
            tx.notify()  # idle workers carry out the effects (and arm the timers) at once
        outcome = Outcome.REFUSED if decision.ignored else Outcome.APPLIED
        log.info(
            "operator %s %s on saga %s: %s (%s)",
            request.actor,
            request.action.value,
            saga_id,
            outcome.value,
            decision.note,
            extra=saga_fields(saga_id, request.step, event.event_id)
            | {"actor": request.actor, "action": request.action.value, "outcome": outcome.value},
        )
        return _result(record, decision.state.status, outcome, decision.note, event.event_id)

    def definition(self, name: str, version: int) -> SagaDefinition:
        """One registered definition version (kept: a version never changes).

        :raises LookupError: when it was never registered.
        """
        key = (name, version)
        if key not in self._definitions:
            self._definitions[key] = self.store.definition(name, version)
        return self._definitions[key]

    def _definition(self, record: InstanceRecord) -> SagaDefinition:
        return self.definition(record.state.saga_name, record.state.definition_version)


def _result(
    record: InstanceRecord,
    after: InstanceStatus,
    outcome: Outcome,
    note: str,
    event_id: str | None,
) -> ActionResult:
    return ActionResult(
        saga_id=record.saga_id,
        outcome=outcome,
        note=note.removeprefix("ignored: "),
        status_before=record.state.status,
        status_after=after,
        event_id=event_id,
    )
