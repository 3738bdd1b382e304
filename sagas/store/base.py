"""The storage contract: one small abstract class whose docstrings are the promises.

Implementations: :class:`sagas.store.sql.SQLStore` (SQLite file by default, PostgreSQL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sagas.definitions.model import SagaDefinition
from sagas.engine.state import InstanceStatus, SagaState
from sagas.errors import SagaError
from sagas.events import Event
from sagas.store.dead_letters import DeadLetterFilter, Replay, Requeue
from sagas.store.filters import InstanceFilter
from sagas.store.records import (
    Backlog,
    Changes,
    DeadLetter,
    InstanceRecord,
    LogEntry,
    OutboxItem,
    QueuedEvent,
    TimerRecord,
)

__all__ = [
    "ConcurrencyConflictError",
    "DefinitionVersion",
    "RoundTx",
    "Store",
    "StoreError",
    "UnknownSagaError",
]


class StoreError(SagaError):
    """The database failed or went away; the message says which database and what failed."""


class ConcurrencyConflictError(StoreError):
    """Another writer changed an instance first; nothing of the transaction was written."""


class UnknownSagaError(SagaError, LookupError):
    """No saga instance has this id."""

    def __init__(self, saga_id: str) -> None:
        self.saga_id = saga_id
        super().__init__(f"no saga instance {saga_id!r}")


@dataclass(frozen=True)
class DefinitionVersion:
    """One registered definition version, as operators see it."""

    name: str
    version: int
    registered_at: datetime
    """When this content was registered last (by any worker)."""
    running: int
    """How many of its instances have not ended (``running`` or ``compensating``)."""


class RoundTx(ABC):
    """One round of a worker: a write transaction in which it claims work, reads the instances
    concerned, and writes its decisions. Claimed rows are locked until the round ends (on
    PostgreSQL ``FOR UPDATE SKIP LOCKED``: other workers take other rows; on SQLite the round
    holds the database's write lock), so a crashed worker's claims vanish with its connection.
    """

    @abstractmethod
    def queued(self, limit: int) -> list[QueuedEvent]:
        """Claim the oldest queued events, never one whose instance has an older queued event
        claimed by another worker (an instance's events are decided in order)."""

    @abstractmethod
    def due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        """Claim timers due at ``now`` or earlier, earliest first."""

    @abstractmethod
    def earliest_waiting(self, claimed: Collection[int]) -> datetime | None:
        """The earliest receipt time of a queued event this round did not claim (its position
        is not in ``claimed``): one left for a later round, or claimed by another worker.
        ``None`` when there is none. A timer due at or after it must not fire yet."""

    @abstractmethod
    def expired_outbox(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxItem]:
        """Claim outbox rows whose lease expired (their worker died before carrying them out)
        and lease them to this worker until ``lease_until``."""

    @abstractmethod
    def seen(self, event_ids: Collection[str]) -> set[str]:
        """Those of ``event_ids`` the inbox has (queued or processed)."""

    @abstractmethod
    def versions(self, saga_ids: Collection[str]) -> dict[str, int]:
        """Lock the instances among ``saga_ids`` for this round; their current versions."""

    @abstractmethod
    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]:
        """The stored instances among ``saga_ids``."""

    @abstractmethod
    def notify(self) -> None:
        """Wake the workers listening on the database once the round commits (PostgreSQL
        ``NOTIFY``; elsewhere workers poll)."""

    @abstractmethod
    def apply(self, changes: Changes) -> None:
        """Write ``changes``; they commit with the round, all of it or nothing.

        :raises ConcurrencyConflictError: when an instance to create exists, or an instance to
            update no longer has the expected version.
        """


class Store(ABC):
    """Durable home of definitions, instances, their logs, the queue, outbox and timers."""

    @abstractmethod
    def round(self) -> AbstractContextManager[RoundTx]:
        """A worker's round; commits when the block ends normally, else rolls back.

        :raises ConcurrencyConflictError: when another worker got in the way (a changed
            instance, a lock cycle); nothing of the round was written.
        """

    def listen(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``wake`` whenever another process queues events or commits timers; returns a
        function that stops listening, or ``None`` where the database cannot notify (then
        workers poll)."""
        return None

    # -- definitions ------------------------------------------------------------------------

    @abstractmethod
    def register_definition(self, definition: SagaDefinition, registered_at: datetime) -> int:
        """Store ``definition`` and return its stored version.

        Content equal to any version registered before (the ``version`` field aside) reuses
        that version, so a rollback or a rolling deploy that alternates two files adds no
        versions; new content becomes a new version (``max(latest + 1, definition.version)``).
        Either way ``registered_at`` becomes the version's last registration: the version
        registered last is the one new instances start on.
        """

    @abstractmethod
    def definition(self, name: str, version: int) -> SagaDefinition:
        """One registered version.

        :raises LookupError: when it was never registered.
        """

    @abstractmethod
    def definitions(self, name: str | None = None) -> list[SagaDefinition]:
        """Every registered version (of ``name``), oldest first."""

    @abstractmethod
    def definition_versions(self, name: str | None = None) -> list[DefinitionVersion]:
        """Every registered version (of ``name``), oldest first per saga, with when its content
        was last registered and how many of its instances have not ended."""

    # -- the queue and deciding -------------------------------------------------------------

    @abstractmethod
    def enqueue(self, events: Sequence[Event], *, received_at: datetime) -> int:
        """Queue events durably, received by the engine at ``received_at`` (the intake's
        clock, never the sender's ``timestamp``: races are decided by it); an event id seen
        before (queued or processed) is skipped.

        :returns: how many were newly queued.
        """

    @abstractmethod
    def enqueue_new(self, events: Sequence[Event], *, received_at: datetime) -> list[bool]:
        """Queue events as :meth:`enqueue` does, in one transaction; per event, whether it
        was newly queued (``False``: the inbox had its id, or an earlier event of ``events``
        has it). The answer is exact even while other writers queue the same ids.
        """

    @abstractmethod
    def queued(self, limit: int) -> list[QueuedEvent]:
        """The oldest queued events, by global position."""

    @abstractmethod
    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]:
        """The stored instances among ``saga_ids``."""

    # -- effects and timers -----------------------------------------------------------------

    @abstractmethod
    def pending_outbox(self, limit: int) -> list[OutboxItem]:
        """Effects not yet carried out, oldest first."""

    @abstractmethod
    def renew_leases(self, keys: Collection[str], until: datetime) -> int:
        """Extend to ``until`` the lease of the outbox rows with these keys (see
        :func:`~sagas.store.records.outbox_key`), which this worker is still carrying out;
        returns how many rows are still there."""

    @abstractmethod
    def start_schedule(self, saga_name: str, at: datetime) -> datetime:
        """Begin the schedule of ``saga_name`` at ``at`` unless it has begun already (runs
        before the first registration are never started); returns its ``fired_until``."""

    @abstractmethod
    def next_due(self) -> datetime | None:
        """When the earliest timer is due (``None``: no timers)."""

    # -- reading, for people ----------------------------------------------------------------

    @abstractmethod
    def instance(self, saga_id: str) -> InstanceRecord:
        """One instance.

        :raises UnknownSagaError: when there is none with that id.
        """

    @abstractmethod
    def list_instances(
        self, where: InstanceFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[InstanceRecord]:
        """The instances ``where`` selects (all by default), most recently updated first."""

    @abstractmethod
    def instance_ids(
        self, where: InstanceFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[str]:
        """The ids of what :meth:`list_instances` lists, without reading the states."""

    @abstractmethod
    def count_matching(self, where: InstanceFilter | None = None) -> int:
        """How many instances ``where`` selects."""

    @abstractmethod
    def count_instances(self) -> dict[tuple[str, InstanceStatus], int]:
        """How many instances per (saga name, status)."""

    @abstractmethod
    def throughput(self, since: datetime) -> dict[tuple[str, InstanceStatus], tuple[int, int, int]]:
        """Per (saga name, status), how many instances have it, how many of them started since
        ``since``, and how many ended (reached that final status) since then."""

    @abstractmethod
    def recent_states(self, since: datetime, limit: int) -> list[SagaState]:
        """States of instances updated since ``since``, latest first, at most ``limit``."""

    @abstractmethod
    def backlog(self, now: datetime) -> Backlog:
        """What waits in the queue, the outbox and the timers at ``now``."""

    @abstractmethod
    def log(self, saga_id: str) -> list[LogEntry]:
        """The log of one instance, in order."""

    @abstractmethod
    def log_from(self, position: int, limit: int) -> list[LogEntry]:
        """Log entries of all instances after global ``position``, in order."""

    @abstractmethod
    def timers(self, saga_id: str | None = None) -> list[TimerRecord]:
        """Pending timers (of one instance), earliest first."""

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters first."""

    # -- dead letters (sagas.store.dead_letters) --------------------------------------------

    @abstractmethod
    def record_dead_letter(self, letter: DeadLetter) -> int:
        """Keep ``letter`` (for the ways in that cannot answer the sender: see
        :func:`~sagas.store.dead_letters.dead_letter_of`); returns its id."""

    @abstractmethod
    def find_dead_letters(
        self, where: DeadLetterFilter | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The dead letters ``where`` selects (all by default), the most recent first."""

    @abstractmethod
    def dead_letter_ids(self, where: DeadLetterFilter | None = None) -> list[int]:
        """The ids of every dead letter ``where`` selects, the most recent first."""

    @abstractmethod
    def count_dead_letters(self, where: DeadLetterFilter | None = None) -> int:
        """How many dead letters ``where`` selects."""

    @abstractmethod
    def dead_letter(self, letter_id: int) -> DeadLetter:
        """One dead letter.

        :raises UnknownDeadLetterError: when there is none with that id.
        """

    @abstractmethod
    def dead_letters_by_id(self, letter_ids: Collection[int]) -> dict[int, DeadLetter]:
        """Those of these dead letters that exist, by id."""

    @abstractmethod
    def requeue_dead_letters(
        self, replays: Sequence[Replay], *, received_at: datetime, dry_run: bool = False
    ) -> list[Requeue]:
        """Queue each replay's event (what its dead letter holds, accepted by the intake) at
        ``received_at`` and remove the dead letter, all in one transaction; ``dry_run`` writes
        nothing and says what it would do. One fate per replay:

        ``DUPLICATE`` (nothing queued, the dead letter removed) when the event waits in the
        queue or an instance among the replay's ``saga_ids`` has it in its log; ``GONE`` when
        the dead letter no longer exists; else ``QUEUED`` (also when the inbox knows the event
        as processed without effect: it was dead-lettered then).
        """

    @abstractmethod
    def drop_dead_letters(self, letter_ids: Collection[int]) -> set[int]:
        """Remove these dead letters; returns the ids of those that were there."""

    @abstractmethod
    def queue_depth(self) -> int:
        """How many events wait in the queue."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
