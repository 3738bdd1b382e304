"""The ids and timers of a working instance: the part of
:class:`~sagas.engine.transition.Transition` that names attempts and schedules or cancels
timers. Every id here is also a deduplication key (of outbox rows, timer rows, fired timers and
handler outcomes), so a change of format would strand the instances already running."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sagas.definitions.model import ActionSpec, Delay, SagaDefinition
from sagas.engine.effects import CancelTimer, Effect, ScheduleTimer, TimerKind
from sagas.engine.state import SagaState

__all__ = ["Timing"]


class Timing:
    """Ids of steps and attempts, and timers, for one instance being decided."""

    definition: SagaDefinition
    original: SagaState
    now: datetime
    effects: list[Effect]
    notes: list[str]
    deadline_armed: int

    def spec(self, name: str, undo: bool) -> ActionSpec:
        step = self.definition.step(name)
        if undo:
            assert step.compensation is not None, f"{name} has no compensation"
            return step.compensation
        return step

    def action_id(self, name: str, attempt: int, undo: bool) -> str:
        """The id of one attempt: ``<step key>/<attempt>``."""
        return f"{self.step_key(name, undo)}/{attempt}"

    def step_key(self, name: str, undo: bool) -> str:
        """The idempotency key every attempt of step ``name``'s action (or compensation)
        shares, so a participant can deduplicate across retries."""
        return f"{self.original.saga_id}/{name}{'/undo' if undo else ''}"

    def timer_id(self, kind: TimerKind, name: str | None, attempt: int, undo: bool) -> str:
        if name is None:  # the saga deadline, numbered once an operator re-armed it
            armed = f"/{self.deadline_armed}" if self.deadline_armed else ""
            return f"{self.original.saga_id}/{kind.value}{armed}"
        return f"{self.action_id(name, attempt, undo)}/{kind.value}"

    def schedule(
        self, kind: TimerKind, name: str | None, attempt: int, undo: bool, due: datetime
    ) -> None:
        self.effects.append(
            ScheduleTimer(
                timer_id=self.timer_id(kind, name, attempt, undo),
                kind=kind,
                step=name,
                attempt=attempt,
                compensating=undo,
                due_at=due,
            )
        )

    def cancel_timer(self, kind: TimerKind, name: str | None, attempt: int, undo: bool) -> None:
        if name is not None:  # only cancel what the step's action did schedule
            spec = self.spec(name, undo)
            if kind == TimerKind.TIMEOUT and spec.timeout is None:
                return
            if kind == TimerKind.DELAY and not isinstance(spec.action, Delay):
                return
        timer_id = self.timer_id(kind, name, attempt, undo)
        scheduled = [e for e in self.effects if isinstance(e, ScheduleTimer)]
        if any(timer.timer_id == timer_id for timer in scheduled):
            # Scheduled by this very decision: it is simply not scheduled.
            self.effects = [e for e in self.effects if getattr(e, "timer_id", None) != timer_id]
            return
        self.effects.append(CancelTimer(timer_id=timer_id))

    def backoff(self, spec: ActionSpec, name: str, attempt: int) -> timedelta:
        """The retry delay, with jitter derived from the ids so a replay computes the same."""
        base = spec.retry.delay_before(attempt)
        seed = f"{self.original.saga_id}/{name}/{attempt}".encode()
        fraction = int.from_bytes(hashlib.blake2b(seed, digest_size=8).digest()) / 2**64
        return base * (1 + spec.retry.jitter * (2 * fraction - 1))

    def rearm_deadline(self) -> None:
        """Schedule the saga deadline anew, from now, for an instance that goes back to
        ``running`` after it ended (under a new timer id: the fired event of the first one is
        in the inbox, and a repeat of an id is dropped as a duplicate)."""
        deadline = self.definition.deadline
        if deadline is not None:
            self.deadline_armed += 1
            self.schedule(TimerKind.DEADLINE, None, 0, False, self.now + deadline)
            self.notes.append(f"deadline re-armed: {self.now + deadline}")
