"""A worker's cache of the instance states it committed, checked against the stored versions."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from sagas.engine.state import SagaState
from sagas.store.base import RoundTx, Store

__all__ = ["STATE_CACHE_SIZE", "StateCache"]

STATE_CACHE_SIZE = 100_000
"""How many states a worker keeps (the least recently committed go first)."""


class StateCache:
    """The latest states this worker committed, with their versions: a round reads an instance
    from here when the stored version still matches, else from the store."""

    def __init__(self, size: int = STATE_CACHE_SIZE) -> None:
        self._states: OrderedDict[str, tuple[int, SagaState]] = OrderedDict()
        self._size = size

    def lock(self, tx: RoundTx, saga_ids: Collection[str]) -> dict[str, tuple[int, SagaState]]:
        """Lock the stored instances among ``saga_ids`` for the round and read them: from the
        cache where the version still matches, else from the store."""
        states = self._states
        versions = tx.versions(saga_ids)
        found = {
            saga_id: states[saga_id]
            for saga_id, version in versions.items()
            if saga_id in states and states[saga_id][0] == version
        }
        missing = versions.keys() - found.keys()
        if missing:
            for saga_id, record in tx.instances(missing).items():
                found[saga_id] = (record.version, record.state)
        return found

    def current(self, store: Store, saga_ids: Collection[str]) -> dict[str, SagaState]:
        """The latest known states (cache, else store), for handler contexts."""
        found = {i: self._states[i][1] for i in saga_ids if i in self._states}
        missing = set(saga_ids) - found.keys()
        if missing:
            for saga_id, record in store.instances(missing).items():
                found[saga_id] = record.state
        return found

    def remember(self, state: SagaState, version: int) -> None:
        """Keep ``state``, committed at ``version``."""
        self._states[state.saga_id] = (version, state)
        self._states.move_to_end(state.saga_id)
        if len(self._states) > self._size:
            self._states.popitem(last=False)

    def forget(self, saga_id: str | None = None) -> None:
        """Drop one state (written elsewhere since), or all of them (``None``)."""
        if saga_id is None:
            self._states.clear()
        else:
            self._states.pop(saga_id, None)
