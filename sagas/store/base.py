"""The storage contract: one small abstract class whose docstrings are the promises.

Implementations: :class:`sagas.store.sql.SQLStore` (SQLite file by default, PostgreSQL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from datetime import datetime

from sagas.definitions.model import SagaDefinition
from sagas.engine.state import InstanceStatus
from sagas.errors import SagaError
from sagas.events import Event
from sagas.store.records import (
    Changes,
    DeadLetter,
    InstanceRecord,
    LogEntry,
    OutboxItem,
    QueuedEvent,
    TimerRecord,
)

__all__ = ["ConcurrencyConflictError", "Store", "StoreError", "UnknownSagaError"]


class StoreError(SagaError):
    """The database failed or went away; the message says which database and what failed."""


class ConcurrencyConflictError(StoreError):
    """Another writer changed an instance first; nothing of the transaction was written."""


class UnknownSagaError(SagaError, LookupError):
    """No saga instance has this id."""

    def __init__(self, saga_id: str) -> None:
        self.saga_id = saga_id
        super().__init__(f"no saga instance {saga_id!r}")


class Store(ABC):
    """Durable home of definitions, instances, their logs, the queue, outbox and timers."""

    # -- definitions ------------------------------------------------------------------------

    @abstractmethod
    def register_definition(self, definition: SagaDefinition, registered_at: datetime) -> int:
        """Store ``definition`` and return its stored version.

        The same content as the latest version reuses that version; changed content becomes a
        new version (``max(latest + 1, definition.version)``).
        """

    @abstractmethod
    def definition(self, name: str, version: int) -> SagaDefinition:
        """One registered version.

        :raises LookupError: when it was never registered.
        """

    @abstractmethod
    def definitions(self, name: str | None = None) -> list[SagaDefinition]:
        """Every registered version (of ``name``), oldest first."""

    # -- the queue and deciding -------------------------------------------------------------

    @abstractmethod
    def enqueue(self, events: Sequence[Event]) -> int:
        """Queue events durably; an event id seen before (queued or processed) is skipped.

        :returns: how many were newly queued.
        """

    @abstractmethod
    def seen(self, event_ids: Collection[str]) -> set[str]:
        """Those of ``event_ids`` the inbox has (queued or processed)."""

    @abstractmethod
    def queued(self, limit: int) -> list[QueuedEvent]:
        """The oldest queued events, by global position."""

    @abstractmethod
    def instances(self, saga_ids: Collection[str]) -> dict[str, InstanceRecord]:
        """The stored instances among ``saga_ids``."""

    @abstractmethod
    def find_instance(self, saga_name: str, correlation_key: str) -> InstanceRecord | None:
        """The instance of ``saga_name`` keyed ``correlation_key``, if any."""

    @abstractmethod
    def apply(self, changes: Changes) -> None:
        """Write ``changes`` in ONE transaction: all of it or nothing.

        :raises ConcurrencyConflictError: when an instance to create exists, or an instance to
            update no longer has the expected version.
        """

    # -- effects and timers -----------------------------------------------------------------

    @abstractmethod
    def pending_outbox(self, limit: int) -> list[OutboxItem]:
        """Effects not yet carried out, oldest first."""

    @abstractmethod
    def due_timers(self, now: datetime, limit: int) -> list[TimerRecord]:
        """Timers due at ``now`` or earlier, earliest first."""

    @abstractmethod
    def schedules(self) -> dict[str, datetime]:
        """Per scheduled saga, the time up to which its runs were started or skipped."""

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
        self,
        *,
        status: InstanceStatus | None = None,
        saga_name: str | None = None,
        sleeping: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> list[InstanceRecord]:
        """Instances, most recently updated first; ``sleeping``: only those waiting for a
        retry's back-off or a delay step's timer."""

    @abstractmethod
    def count_instances(self) -> dict[tuple[str, InstanceStatus], int]:
        """How many instances per (saga name, status)."""

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

    @abstractmethod
    def queue_depth(self) -> int:
        """How many events wait in the queue."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
