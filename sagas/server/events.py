"""``POST /events``: events in over HTTP, for services that do not speak a broker.

The body is one of four forms, told apart by its ``Content-Type`` (see :mod:`sagas.cloudevents`
for the mapping of the attributes):

* ``application/cloudevents+json``: one CloudEvent, structured mode;
* ``application/cloudevents-batch+json``: a JSON array of structured CloudEvents;
* any other type with ``ce-`` headers: one CloudEvent in binary mode, its attributes in the
  headers and its data the body, which must be JSON (``application/json``);
* ``application/json`` without ``ce-`` headers: the engine's own event JSON, one object or an
  array of them.

Before anything is read the publish token is checked (not the operator token: a service that
may publish may not act on sagas); then the body is read up to the server's body limit (413),
parsed strictly by :mod:`sagas.jsontext`, and every event goes through the one
:class:`~sagas.intake.Intake` (size, nesting, fields, schema; the engine's own ``sagas.*`` types
are refused). One refused event refuses the whole request: nothing is queued. Accepted events
are queued durably, stamped with the time the engine received them, and the answer (202) says
per event whether it was ``accepted`` or a ``duplicate`` (its id was known: nothing changed).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool

from sagas.cloudevents import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    from_binary,
    from_structured,
    is_json_type,
)
from sagas.events import TEXT_DEPTH, Event, EventError
from sagas.intake import MAX_REPORTED, Intake
from sagas.jsontext import JSONTextError, parse_json
from sagas.server.bodies import read_body
from sagas.server.context import Context, context
from sagas.server.events_openapi import REQUEST_BODY, RESPONSES
from sagas.server.problems import ProblemError

__all__ = ["DEFAULT_MAX_BATCH_EVENTS", "EventAnswer", "EventsReport", "events_router"]

DEFAULT_MAX_BATCH_EVENTS = 1000
"""The most events one request may carry unless configured (``--max-batch-events``)."""

_publish_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="publishToken",
    description="The publish token of `sagas serve` (--publish-token): POST /events only.",
)


class EventAnswer(BaseModel):
    """What became of one event of the request."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    event_id: str
    event_type: str
    status: Literal["accepted", "duplicate"] = Field(
        description="accepted: queued now; duplicate: an event with this id was queued or "
        "processed before, and this one changed nothing."
    )


class EventsReport(BaseModel):
    """The answer to ``POST /events``: per event, in the order of the request."""

    accepted: int
    duplicates: int
    events: list[EventAnswer]


async def _publisher(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_publish_bearer)],
) -> Context:
    """The context once the publish token was checked (before the body is read)."""
    ctx = context(request)
    if ctx.read_only:
        raise ProblemError(403, "this server is read-only (sagas serve --read-only): no events")
    if ctx.publish_token is None:
        raise ProblemError(
            403, "this server takes no events: start it with --publish-token (or its file)"
        )
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ProblemError(
            401, "missing bearer token: send 'Authorization: Bearer <publish token>'", challenge
        )
    given = credentials.credentials.encode()
    if secrets.compare_digest(given, ctx.publish_token.encode()):
        return ctx
    if ctx.token is not None and secrets.compare_digest(given, ctx.token.encode()):
        raise ProblemError(403, "the operator token does not publish events: use the publish token")
    raise ProblemError(401, "wrong bearer token", challenge)


Publisher = Annotated[Context, Depends(_publisher)]


@dataclass(frozen=True)
class _Refusal:
    where: str
    error: EventError
    too_large: bool = False


class _RefusedError(Exception):
    def __init__(self, refusals: list[_Refusal], total: int) -> None:
        super().__init__("refused")
        self.refusals, self.total = refusals, total


def events_router(intake: Intake, max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS) -> APIRouter:
    """The router of ``POST /events``; ``intake`` checks every event (its
    ``max_event_bytes`` is the largest event taken), a request carries at most
    ``max_batch_events`` events."""
    router = APIRouter()

    @router.post(
        "/events",
        status_code=202,
        tags=["events"],
        responses=RESPONSES,
        openapi_extra=REQUEST_BODY,
    )
    async def publish_events(ctx: Publisher, request: Request) -> EventsReport:
        """Publish events to the engine (CloudEvents structured, binary or batch mode, or the
        engine's own JSON). All of the request or nothing: one refused event refuses all."""
        received_at = ctx.clock.now()
        body = await read_body(request, ctx.max_body_bytes)
        headers = request.headers.items()
        content_type = request.headers.get("content-type")
        try:
            return await run_in_threadpool(
                _publish, ctx, intake, max_batch_events, headers, content_type, body, received_at
            )
        except _RefusedError as refused:
            raise _problem(refused) from None

    return router


def _publish(
    ctx: Context,
    intake: Intake,
    max_batch: int,
    headers: list[tuple[str, str]],
    content_type: str | None,
    body: bytes,
    received_at: datetime,
) -> EventsReport:
    events = _decode(intake, max_batch, headers, content_type, body, received_at)
    new = ctx.store.enqueue_new(events, received_at=received_at)
    answers = [
        EventAnswer(
            event_id=event.event_id,
            event_type=event.event_type,
            status="accepted" if fresh else "duplicate",
        )
        for event, fresh in zip(events, new, strict=True)
    ]
    accepted = sum(new)
    return EventsReport(accepted=accepted, duplicates=len(new) - accepted, events=answers)


def _decode(
    intake: Intake,
    max_batch: int,
    headers: list[tuple[str, str]],
    content_type: str | None,
    body: bytes,
    received_at: datetime,
) -> list[Event]:
    """Every event of the request, checked; raises :class:`_RefusedError` or a 413/415/422."""
    media = (content_type or "").partition(";")[0].strip().lower()
    limit = intake.max_event_bytes
    if media in (STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE):
        if not is_json_type(content_type or ""):
            raise ProblemError(415, f"{media} must be UTF-8, not {content_type!r}")
        batch = media == BATCH_CONTENT_TYPE

        def structured(item: Any) -> dict[str, Any]:
            return from_structured(item, received_at=received_at)

        if not batch and len(body) > limit:
            raise _too_large(len(body), limit)
        value = _parse(body)
        if batch:
            items = _batch(value, max_batch, "a CloudEvents batch")
            return _each(intake, items, limit, structured, batch=True)
        return _each(intake, [value], limit, structured, batch=False)
    attributes = [(name, value) for name, value in headers if name.lower().startswith("ce-")]
    if attributes:
        # In binary mode the event is its data and its attributes (the headers): both count.
        size = len(body) + sum(len(name) + len(value) for name, value in attributes)
        if size > limit:
            raise _too_large(size, limit)
        if body and not is_json_type(content_type or ""):
            raise ProblemError(
                415, f"binary mode takes JSON data only (application/json), not {content_type!r}"
            )
        try:
            mapped = from_binary(headers, body, content_type=content_type, received_at=received_at)
            return [intake.from_dict(mapped)]
        except EventError as exc:
            raise _RefusedError([_Refusal("event", exc)], 1) from None
    if not is_json_type(content_type or ""):
        raise ProblemError(
            415,
            f"POST /events takes {STRUCTURED_CONTENT_TYPE}, {BATCH_CONTENT_TYPE}, a binary-mode "
            f"CloudEvent (ce- headers) or application/json; not {content_type or 'untyped'!r}",
        )
    value = _parse(body)
    if isinstance(value, list):
        items = _batch(value, max_batch, "an array of events")
        return _each(intake, items, limit, _as_is, batch=True)
    if len(body) > limit:
        raise _too_large(len(body), limit)
    return _each(intake, [value], limit, _as_is, batch=False)


def _as_is(item: Any) -> Any:
    return item


def _parse(body: bytes) -> Any:
    if not body:
        raise ProblemError(422, "the request has no body: send an event")
    try:
        # Two levels more than an event may have: the batch's array and the event's object.
        return parse_json(body, max_bytes=None, max_depth=TEXT_DEPTH + 2)
    except JSONTextError as exc:
        raise ProblemError(422, f"the body is not strict JSON: {exc}") from None


def _batch(value: Any, max_batch: int, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProblemError(422, f"{what} must be a JSON array")
    if not value:
        raise ProblemError(422, f"{what} holds no event")
    if len(value) > max_batch:
        raise ProblemError(
            413, f"{what} of {len(value):,} events: at most {max_batch:,} in one request"
        )
    return value


def _each(
    intake: Intake,
    items: list[Any],
    limit: int,
    mapping: Callable[[Any], Any],
    *,
    batch: bool,
) -> list[Event]:
    """``items`` mapped to the engine's form and checked by ``intake``; every refusal named by
    its place (``events[3]`` in a batch) and id, all of them reported at once."""
    events: list[Event] = []
    refusals: list[_Refusal] = []
    for index, item in enumerate(items):
        where = f"events[{index}]" if batch else "event"
        size = len(to_json(item)) if isinstance(item, dict) else 0
        try:
            if size > limit:
                shown = item.get("id", item.get("eventId"))
                raise EventError(
                    f"{size:,} bytes is more than the limit of {limit:,} bytes",
                    shown if isinstance(shown, str) else None,
                )
            events.append(intake.from_dict(mapping(item)))
        except EventError as exc:
            refusals.append(_Refusal(where, exc, size > limit))
    if refusals:
        raise _RefusedError(refusals, len(items))
    return events


def _too_large(size: int, limit: int) -> ProblemError:
    return ProblemError(413, f"the event ({size:,} bytes) is larger than {limit:,} bytes")


def _problem(refused: _RefusedError) -> ProblemError:
    """413 when an event is too large (it must be split or shrunk, whatever else is wrong),
    else 422; the detail names each refused event by its place and id."""
    refusals = refused.refusals
    errors = [{"where": one.where, "message": str(one.error)} for one in refusals]
    for error, one in zip(errors, refusals, strict=True):
        if one.error.event_id is not None:
            error["eventId"] = one.error.event_id
    listed = "; ".join(f"{e['where']}: {e['message']}" for e in errors[:MAX_REPORTED])
    more = f"; ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    status = 413 if any(one.too_large for one in refusals) else 422
    none = ", none accepted" if refused.total > 1 else ""
    detail = f"{len(refusals)} of {refused.total} event(s) refused{none}: {listed}{more}"
    if refusals[0].where == "event":  # one event, not in a batch: its error says it all
        detail = errors[0]["message"]
    return ProblemError(status, detail, errors=errors[:MAX_REPORTED])
