"""One round's decisions, gathered into the changes of one transaction (a group commit)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sagas.engine.decide import Decision
from sagas.engine.effects import (
    CancelTimer,
    Finish,
    InvokeHandler,
    OutboxEffect,
    PublishCommand,
    ScheduleTimer,
)
from sagas.engine.state import SagaState
from sagas.events import Event
from sagas.store.records import Changes, DeadLetter, InstanceRecord, LogEntry, TimerRecord

__all__ = ["Batch", "Working"]


@dataclass
class Working:
    """An instance while a round is decided: its latest state and versions."""

    state: SagaState
    version: int
    stored_version: int | None  # None: created in this round


@dataclass
class Batch:
    """Decisions of one round, and what they ask to write and to do after the commit."""

    now: datetime
    """The time of the round: every decision, log entry and dead letter of it carries it."""
    changes: Changes = field(default_factory=Changes)
    working: dict[str, Working] = field(default_factory=dict)
    before: dict[str, SagaState] = field(default_factory=dict)
    """The stored states the round started from, by saga id (not those of new instances)."""
    touched: dict[str, Working] = field(default_factory=dict)
    timers: dict[str, TimerRecord] = field(default_factory=dict)
    finished: list[SagaState] = field(default_factory=list)
    ended_by: dict[str, str] = field(default_factory=dict)
    """The id of the event each finished instance ended on, by saga id."""

    @property
    def outbox(self) -> list[tuple[str, OutboxEffect]]:
        """The effects to carry out once this round committed."""
        return self.changes.outbox

    def record(
        self,
        event: Event,
        working: Working,
        decision: Decision,
        *,
        received_at: datetime | None = None,
    ) -> None:
        """Log ``decision`` on its instance and queue its effects; ``received_at`` is when the
        engine received ``event`` (default: the round's time, for events decided as they come
        in, such as an operator's)."""
        state = decision.state
        self.changes.log.append(
            LogEntry(
                saga_id=state.saga_id,
                seq=working.version,
                event=event,
                note=decision.note,
                effects=decision.effects,
                ignored=decision.ignored,
                recorded_at=self.now,
                received_at=received_at or self.now,
            )
        )
        for effect in decision.effects:
            match effect:
                case PublishCommand() | InvokeHandler():
                    self.changes.outbox.append((state.saga_id, effect))
                case ScheduleTimer():
                    self.timers[effect.timer_id] = TimerRecord(state.saga_id, effect)
                case CancelTimer(timer_id=timer_id):
                    # A timer scheduled and cancelled in the same round is never written.
                    if self.timers.pop(timer_id, None) is None:
                        self.changes.timers_removed.append(timer_id)
                case Finish():
                    self.finished.append(state)
                    self.ended_by[state.saga_id] = event.event_id
        self.touched[state.saga_id] = working

    def dead_letter(self, event: Event, reason: str, saga_id: str | None = None) -> None:
        """Keep ``event`` aside with the reason it could not be used."""
        self.changes.dead_letters.append(
            DeadLetter(
                reason=reason,
                payload=event.to_json(),
                event_id=event.event_id,
                event_type=event.event_type,
                saga_id=saga_id or event.saga_id,
                created_at=self.now,
            )
        )

    def close(self) -> Changes:
        """The changes, with one write per touched instance (its latest state)."""
        self.changes.timers = list(self.timers.values())
        for working in self.touched.values():
            record = InstanceRecord(working.state, working.version)
            if working.stored_version is None:
                self.changes.created.append(record)
            else:
                self.changes.updated.append((record, working.stored_version))
        return self.changes
