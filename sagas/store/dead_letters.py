"""Dead letters as people act on them: which ones (:class:`DeadLetterFilter`), how a message
that was refused is kept (:func:`dead_letter_of`), and what a replay did (:class:`Requeue`).

The store's queries on them live in :mod:`sagas.store.dead_letter_sql`.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from sagas.errors import SagaError
from sagas.events import Event
from sagas.store.records import DeadLetter

__all__ = [
    "MAX_SOURCE_LENGTH",
    "DeadLetterFilter",
    "Replay",
    "Requeue",
    "UnknownDeadLetterError",
    "dead_letter_of",
]

MAX_SOURCE_LENGTH = 50
"""The longest ``source`` the store keeps (``cli``, ``bus``, ``http``, a transport's name)."""
_MAX_ID = 200  # event ids and types: the columns' size


class UnknownDeadLetterError(SagaError, LookupError):
    """No dead letter has this id (never was, or it was replayed or dropped meanwhile)."""

    def __init__(self, letter_id: int) -> None:
        self.letter_id = letter_id
        super().__init__(f"no dead letter {letter_id!r}")


class Requeue(StrEnum):
    """What replaying one dead letter did to the queue."""

    QUEUED = "queued"
    """Queued again; the dead letter is gone."""
    DUPLICATE = "duplicate"
    """An instance already decided the event (or it waits in the queue); the dead letter is
    gone, nothing was queued."""
    GONE = "gone"
    """The dead letter was replayed or dropped meanwhile."""


@dataclass(frozen=True)
class Replay:
    """A dead letter to queue again: its id, the event it holds (accepted by the intake), and
    the instances the event concerns (which tell a duplicate: one has it in its log)."""

    letter_id: int
    event: Event
    saga_ids: Collection[str] = ()


class DeadLetterFilter(BaseModel):
    """Conditions on dead letters, all of which must hold (an empty filter selects every one).

    ``reason`` is a part of the reason (any case); ``since <= created_at < until``.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    reason: str | None = Field(None, min_length=1, max_length=500)
    event_type: str | None = Field(None, min_length=1, max_length=_MAX_ID)
    saga_id: str | None = Field(None, min_length=1, max_length=64)
    source: str | None = Field(None, min_length=1, max_length=MAX_SOURCE_LENGTH)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("out of range: no such time in UTC") from None
        return value

    @field_validator("reason", "event_type", "saga_id", "source")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters (\\u0000)")
        return value

    def describe(self) -> str:
        """The conditions as ``field=value`` words (``every dead letter`` when none)."""
        words = []
        for name, value in self.model_dump(exclude_defaults=True).items():
            shown = value.isoformat() if isinstance(value, datetime) else value
            words.append(f"{name}={shown}")
        return " ".join(words) or "every dead letter"


def dead_letter_of(
    raw: bytes | str,
    reason: str,
    *,
    source: str,
    at: datetime,
    attempts: int = 1,
    event_id: str | None = None,
    event_type: str | None = None,
    saga_id: str | None = None,
) -> DeadLetter:
    """A dead letter keeping ``raw`` exactly as received, whatever it holds.

    For the ways in that cannot answer the sender (a broker's consumer): a message the intake
    refused (undecodable, oversized, of an engine type; ``reason`` is the refusal), or one
    redelivered past the transport's limit (``attempts``). Text that is UTF-8 without NUL
    (which PostgreSQL cannot keep) is kept as text, anything else as base64. Ids too long for
    the store are left out (the payload still has them).
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        payload, encoding = text, "text"
    else:
        payload, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return DeadLetter(
        reason=reason.replace("\x00", "\\u0000"),
        payload=payload,
        event_id=_fitting(event_id, _MAX_ID),
        event_type=_fitting(event_type, _MAX_ID),
        saga_id=_fitting(saga_id, 64),
        created_at=at,
        source=source[:MAX_SOURCE_LENGTH],
        attempts=max(attempts, 1),
        encoding=encoding,
    )


def _fitting(value: str | None, length: int) -> str | None:
    if value is None or len(value) > length or "\x00" in value:
        return None
    return value
