"""The JSON API under ``/api``: instances, definitions, statistics and operator actions."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from sagas.definitions.render import to_mermaid
from sagas.engine.operator import OperatorAction
from sagas.operations import ActionRequest, Outcome, collect_stats
from sagas.operations.documents import InstanceSummary, instance_json
from sagas.operations.stats import parse_window
from sagas.server.bodies import GuardedRoute
from sagas.server.context import MAX_OFFSET, Authorized, Context, Filter, context
from sagas.server.graph import step_graph_svg
from sagas.server.models import (
    ActionBody,
    ActionReport,
    BulkActionBody,
    BulkReport,
    DefinitionSummary,
    InstancePage,
)
from sagas.server.problems import ProblemError, problem
from sagas.store.filters import MAX_VERSION, InstanceFilter

__all__ = ["router"]

router = APIRouter(prefix="/api", route_class=GuardedRoute)
Ctx = Annotated[Context, Depends(context)]
SagaId = Annotated[str, Path(min_length=1, max_length=64, description="The saga id.")]
Action = Annotated[OperatorAction, Path(description="The operator action.")]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: problem("No such instance."),
    422: problem(
        "Malformed input: which parameter or field, and why; also a body that is not strict "
        "JSON (a key twice, NaN, nested too deep, not UTF-8)."
    ),
}
MUTATION_PROBLEMS: dict[int | str, dict[str, Any]] = PROBLEMS | {
    401: problem("Missing or wrong bearer token."),
    403: problem("The server is read-only."),
    409: problem("The action does not apply to the instance now, and why."),
    413: problem("The request body is larger than the server's limit (1 MiB by default)."),
    415: problem("The request body is not application/json."),
}
SVG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/svg+xml": {}}, "description": "An SVG image."}
}


LISTING_PARAMETERS = frozenset(
    [field.alias or name for name, field in InstanceFilter.model_fields.items()]
    + ["limit", "offset"]
)
"""The query parameters of ``GET /api/instances``."""


def _known_parameters(request: Request) -> None:
    """A parameter the listing does not know (``stauts``, ``failed_step``) is a 422: ignored,
    it would list every instance as if they all matched."""
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


@router.get(
    "/instances",
    tags=["instances"],
    responses=PROBLEMS,
    dependencies=[Depends(_known_parameters)],
)
def list_instances(
    ctx: Ctx,
    where: Filter,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> InstancePage:
    """Instances the filter selects, most recently updated first, a page at a time."""
    records = ctx.store.list_instances(where, limit=limit, offset=offset)
    return InstancePage(
        total=ctx.store.count_matching(where),
        limit=limit,
        offset=offset,
        items=[InstanceSummary.of(record) for record in records],
    )


@router.get("/instances/{saga_id}", tags=["instances"], responses=PROBLEMS)
def show_instance(ctx: Ctx, saga_id: SagaId) -> dict[str, Any]:
    """One instance: state, pending timers and its timeline (every event and decision)."""
    record = ctx.store.instance(saga_id)
    return instance_json(record, ctx.store.log(saga_id), ctx.store.timers(saga_id))


@router.get(
    "/instances/{saga_id}/graph.svg",
    tags=["instances"],
    response_class=Response,
    responses=PROBLEMS | SVG,
)
def instance_graph(ctx: Ctx, saga_id: SagaId) -> Response:
    """The instance's step graph as SVG, each step coloured by its status."""
    state = ctx.store.instance(saga_id).state
    definition = ctx.definition(state.saga_name, state.definition_version)
    return Response(step_graph_svg(definition, state.steps), media_type="image/svg+xml")


@router.post("/instances/{saga_id}/{action}", tags=["actions"], responses=MUTATION_PROBLEMS)
def act(ctx: Authorized, saga_id: SagaId, action: Action, body: ActionBody) -> ActionReport:
    """Apply an operator action to one instance; it is decided at once and recorded in the
    instance's log. An action that does not apply now is refused (409, saying why); with
    ``dryRun`` nothing is written."""
    result = ctx.operations.act(saga_id, _request(action, body), dry_run=body.dry_run)
    if result.outcome == Outcome.REFUSED:
        raise ProblemError(409, f"{action.value} refused: {result.note}", sagaId=saga_id)
    return ActionReport.of(result)


@router.post("/actions/{action}", tags=["actions"], responses=MUTATION_PROBLEMS)
def act_many(ctx: Authorized, action: Action, body: BulkActionBody) -> BulkReport:
    """Apply an operator action to every instance ``where`` selects; the report says per
    instance what really happened (applied, refused and why, not found)."""
    results = ctx.operations.act_many(body.where, _request(action, body), dry_run=body.dry_run)
    counts = Counter(result.outcome.value for result in results)
    return BulkReport(
        action=action.value,
        dry_run=body.dry_run,
        summary=dict(counts),
        results=[ActionReport.of(result) for result in results],
    )


@router.get("/definitions", tags=["definitions"])
def list_definitions(ctx: Ctx) -> list[DefinitionSummary]:
    """Every registered version of every saga definition, oldest first per saga."""
    return [
        DefinitionSummary(
            name=definition.name,
            version=definition.version,
            description=definition.description or None,
            trigger=definition.trigger,
            steps=[step.name for step in definition.steps],
            mermaid=to_mermaid(definition),
        )
        for definition in ctx.store.definitions()
    ]


@router.get(
    "/definitions/{name}/{version}/graph.svg",
    tags=["definitions"],
    response_class=Response,
    responses={**SVG, 404: PROBLEMS[404]},
)
def definition_graph(
    ctx: Ctx,
    name: Annotated[str, Path(min_length=1, max_length=200)],
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
) -> Response:
    """The step graph of one definition version as SVG."""
    try:
        definition = ctx.definition(name, version)
    except LookupError:
        raise ProblemError(404, f"no definition {name!r} version {version}") from None
    return Response(step_graph_svg(definition), media_type="image/svg+xml")


@router.get("/stats", tags=["stats"], responses={422: PROBLEMS[422]})
def stats(
    ctx: Ctx,
    window: Annotated[
        str, Query(description="How far back: 30s, 15m, 1h, PT1H.", max_length=40)
    ] = "1h",
) -> dict[str, Any]:
    """Instances per saga and status; started and ended per second, step latency percentiles
    and the backlog (queue, outbox lag, overdue timers) over the window."""
    try:
        span = parse_window(window)
    except ValueError as exc:
        raise ProblemError(422, f"window: {exc}") from None
    return collect_stats(ctx.store, ctx.clock.now(), span).to_dict()


def _request(action: OperatorAction, body: ActionBody) -> ActionRequest:
    return ActionRequest(action, body.actor or "api", body.reason, body.step, body.data)
