"""What ``decide`` returns: the new state, the effects to carry out, and a note."""

from __future__ import annotations

from dataclasses import dataclass

from sagas.engine.effects import Effect
from sagas.engine.state import SagaState

__all__ = ["Decision"]


@dataclass(frozen=True)
class Decision:
    """The outcome of one event: the new state, the effects to carry out, and a note for the
    timeline. ``ignored`` decisions leave the state as it was."""

    state: SagaState
    effects: tuple[Effect, ...]
    note: str
    ignored: bool = False
