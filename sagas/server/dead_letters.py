"""The dead-letter API under ``/api/dead-letters``: list and show them (read), replay and drop
them (operator token), one at a time or in bulk, with ``dryRun`` and a report per message."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from sagas.intake import Intake
from sagas.operations.dead_letters import DeadLetters, Fate, LetterReport, letter_to_dict, summary
from sagas.server.bodies import GuardedRoute
from sagas.server.context import MAX_OFFSET, Authorized, Context, context
from sagas.server.problems import ProblemError, problem
from sagas.store.dead_letters import DeadLetterFilter, UnknownDeadLetterError

__all__ = ["BulkLetterBody", "LetterBody", "dead_letters_router"]

Ctx = Annotated[Context, Depends(context)]
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The dead letter's id.")]
READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: problem("No such dead letter."),
    422: problem("Malformed input: which parameter or field, and why."),
}
ACT_PROBLEMS: dict[int | str, dict[str, Any]] = READ_PROBLEMS | {
    401: problem("Missing or wrong bearer token."),
    403: problem("The server is read-only, or the token only publishes events."),
    409: problem("The intake refused the replayed message again (it stays), and why."),
    413: problem("The request body is larger than the server's limit."),
    415: problem("The request body is not application/json."),
}


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LetterBody(_Wire):
    """Replay or drop one dead letter."""

    dry_run: bool = Field(False, description="Check and report, but change nothing.")


class BulkLetterBody(LetterBody):
    """Replay or drop several dead letters: these ``ids``, those ``where`` selects, or
    ``all`` of them (exactly one of the three)."""

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default=[], max_length=10_000)
    where: DeadLetterFilter = DeadLetterFilter()
    all: bool = False

    @model_validator(mode="after")
    def _selects_something(self) -> BulkLetterBody:
        given = bool(self.ids) + (self.where != DeadLetterFilter()) + self.all
        if given != 1:
            raise ValueError('give exactly one of "ids", "where" (a condition) or "all": true')
        return self


def letter_filter(
    reason: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    event_type: Annotated[
        str | None, Query(alias="eventType", min_length=1, max_length=200)
    ] = None,
    saga_id: Annotated[str | None, Query(alias="sagaId", min_length=1, max_length=64)] = None,
    source: Annotated[str | None, Query(min_length=1, max_length=50)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> DeadLetterFilter:
    """The dead-letter filter of a request's query parameters (malformed ones: 422)."""
    try:
        return DeadLetterFilter(
            reason=reason,
            event_type=event_type,
            saga_id=saga_id,
            source=source,
            since=since,
            until=until,
        )
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


Where = Annotated[DeadLetterFilter, Depends(letter_filter)]
LISTING_PARAMETERS = frozenset(
    ["reason", "eventType", "sagaId", "source", "since", "until", "limit", "offset"]
)


def _known_parameters(request: Request) -> None:
    """An unknown parameter (``event_type``, ``type``) is a 422: ignored, it would select
    every dead letter, and a bulk action after it would act on all of them."""
    unknown = sorted(set(request.query_params) - LISTING_PARAMETERS)
    if unknown:
        known = ", ".join(sorted(LISTING_PARAMETERS))
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown parameter (known: {known})",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def dead_letters_router(intake: Intake) -> APIRouter:
    """The routes; replayed messages go through ``intake`` (the server's limits)."""
    router = APIRouter(prefix="/api/dead-letters", route_class=GuardedRoute, tags=["dead letters"])

    def letters(ctx: Context) -> DeadLetters:
        return DeadLetters(ctx.store, intake, ctx.clock)

    @router.get("", responses={422: READ_PROBLEMS[422]}, dependencies=[Depends(_known_parameters)])
    def list_dead_letters(
        ctx: Ctx,
        where: Where,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> dict[str, Any]:
        """Dead letters the filter selects, the most recent first, a page at a time (without
        their payloads: see one to read it)."""
        found = letters(ctx).find(where, limit=limit, offset=offset)
        return {
            "total": letters(ctx).count(where),
            "limit": limit,
            "offset": offset,
            "items": [letter_to_dict(letter, payload=False) for letter in found],
        }

    @router.get("/{letter_id}", responses=READ_PROBLEMS)
    def show_dead_letter(ctx: Ctx, letter_id: LetterId) -> dict[str, Any]:
        """One dead letter with the message as received (``encoding``: text, or base64 for
        bytes that were not UTF-8)."""
        try:
            return letter_to_dict(letters(ctx).show(letter_id))
        except UnknownDeadLetterError as exc:
            raise ProblemError(404, str(exc)) from None

    @router.post("/{letter_id}/replay", responses=ACT_PROBLEMS)
    def replay_dead_letter(
        ctx: Authorized, letter_id: LetterId, body: LetterBody
    ) -> dict[str, Any]:
        """Send one dead letter through the intake again: queued (and removed), a duplicate
        (already decided: removed), or refused again (409: it stays, the detail says why)."""
        report = letters(ctx).replay(letter_id, dry_run=body.dry_run)
        _raise_for(report)
        return report.to_dict()

    @router.post("/{letter_id}/drop", responses=ACT_PROBLEMS)
    def drop_dead_letter(ctx: Authorized, letter_id: LetterId, body: LetterBody) -> dict[str, Any]:
        """Remove one dead letter for good."""
        [report] = letters(ctx).drop([letter_id], dry_run=body.dry_run)
        _raise_for(report)
        return report.to_dict()

    @router.post("/replay", responses=ACT_PROBLEMS)
    def replay_dead_letters(ctx: Authorized, body: BulkLetterBody) -> dict[str, Any]:
        """Replay several dead letters; the report says per message what happened."""
        chosen = letters(ctx)
        if body.ids:
            reports = chosen.replay_ids(body.ids, dry_run=body.dry_run)
        else:
            reports = chosen.replay_many(body.where, dry_run=body.dry_run)
        return _bulk("replay", reports, body.dry_run)

    @router.post("/drop", responses=ACT_PROBLEMS)
    def drop_dead_letters(ctx: Authorized, body: BulkLetterBody) -> dict[str, Any]:
        """Drop several dead letters; the report says per message what happened."""
        chosen = letters(ctx)
        ids = body.ids or chosen.select(body.where)
        return _bulk("drop", chosen.drop(ids, dry_run=body.dry_run), body.dry_run)

    return router


def _raise_for(report: LetterReport) -> None:
    if report.fate is Fate.NOT_FOUND:
        raise ProblemError(404, report.note)
    if report.fate is Fate.REFUSED:
        raise ProblemError(409, f"replay refused, the dead letter stays: {report.note}")


def _bulk(action: str, reports: list[LetterReport], dry_run: bool) -> dict[str, Any]:
    return {
        "action": action,
        "dryRun": dry_run,
        "summary": summary(reports),
        "results": [report.to_dict() for report in reports],
    }
