"""Effects: what ``decide`` asks the runtime to do once the decision is committed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from sagas.engine.state import InstanceStatus
from sagas.events import Event

__all__ = [
    "CancelTimer",
    "DeliverEvent",
    "Effect",
    "Finish",
    "InvokeHandler",
    "OutboxEffect",
    "PublishCommand",
    "ScheduleTimer",
    "TimerKind",
    "effects_adapter",
    "outbox_adapter",
    "step_key_of",
]


class TimerKind(StrEnum):
    """Why a timer exists."""

    TIMEOUT = "timeout"
    RETRY = "retry"
    DELAY = "delay"
    DEADLINE = "deadline"


def _is_none(value: object) -> bool:
    return value is None


class _Effect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PublishCommand(_Effect):
    """Publish ``command`` (through the outbox, after the decision committed)."""

    effect: Literal["publish"] = "publish"
    step: str
    compensating: bool = False
    command: Event


class DeliverEvent(_Effect):
    """Hand a queued event to the bus's subscribers of its type (pub/sub, through the outbox).

    Not produced by ``decide``: the runtime adds it for events that have subscribers.
    """

    effect: Literal["deliver"] = "deliver"
    event: Event


class InvokeHandler(_Effect):
    """Run the registered handler ``handler`` for ``step`` (through the outbox).

    ``idempotency_key`` names this attempt (``<saga>/<step>/<attempt>``, or
    ``<saga>/<step>/undo/<attempt>``): it is the outbox key and the id of the outcome event.
    ``step_key`` is shared by every attempt of the step's action (``<saga>/<step>``), or of its
    compensation (``<saga>/<step>/undo``): what a participant deduplicates on. Effects written
    before it existed have none (see :func:`step_key_of`).
    """

    effect: Literal["invoke"] = "invoke"
    step: str
    handler: str
    attempt: int
    compensating: bool = False
    idempotency_key: str
    step_key: str | None = Field(None, exclude_if=_is_none)  # absent from older logs


class ScheduleTimer(_Effect):
    """Persist a timer; when due, a ``sagas.TimerFired`` event comes back to the instance."""

    effect: Literal["schedule"] = "schedule"
    timer_id: str
    kind: TimerKind
    step: str | None = None
    attempt: int = 0
    compensating: bool = False
    due_at: datetime


class CancelTimer(_Effect):
    """Delete a timer that is no longer needed (a fired stale timer would be ignored anyway)."""

    effect: Literal["cancel"] = "cancel"
    timer_id: str


class Finish(_Effect):
    """The instance reached a final status."""

    effect: Literal["finish"] = "finish"
    status: InstanceStatus


Effect = Annotated[
    PublishCommand | InvokeHandler | ScheduleTimer | CancelTimer | Finish,
    Field(discriminator="effect"),
]
effects_adapter: TypeAdapter[list[Effect]] = TypeAdapter(list[Effect])
"""Reads and writes effect lists as JSON (for the instance's timeline)."""

OutboxEffect = Annotated[
    PublishCommand | DeliverEvent | InvokeHandler, Field(discriminator="effect")
]
"""What the outbox carries out after a commit."""
outbox_adapter: TypeAdapter[OutboxEffect] = TypeAdapter(OutboxEffect)


def step_key_of(effect: InvokeHandler) -> str:
    """The key every attempt of ``effect``'s action (or compensation) shares: its
    ``step_key``, or for an effect written before that existed, its per-attempt id without the
    trailing ``/<attempt>``."""
    if effect.step_key is not None:
        return effect.step_key
    head, _, attempt = effect.idempotency_key.rpartition("/")
    return head if head and attempt.isdigit() else effect.idempotency_key
