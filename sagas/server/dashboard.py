"""The web dashboard: server-rendered pages of the same process, no build step, no CDN."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from pydantic import ValidationError

from sagas.definitions.durations import format_duration
from sagas.engine.operator import OPERATOR_EVENT_TYPES, OperatorAction
from sagas.engine.state import InstanceStatus, StepStatus
from sagas.operations.documents import describe_effect
from sagas.server.context import MAX_OFFSET, Context, context
from sagas.server.graph import STEP_COLOURS, step_graph_svg
from sagas.store.filters import InstanceFilter

__all__ = ["router"]

PAGE_SIZE = 50


@pass_context
def _path_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> str:
    """``url_for`` of the templates: the path of a route or file under the configured root
    path, never a URL whose host comes from the request's ``Host`` header (which anyone
    sending the request chooses)."""
    request: Request = context["request"]
    return _root(request) + str(request.app.url_path_for(name, **path_params))


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


_env = Environment(
    loader=PackageLoader("sagas.server", "templates"), autoescape=select_autoescape()
)
_env.globals["url_for"] = _path_for  # Jinja2Templates keeps a url_for that is already set
templates = Jinja2Templates(env=_env)
router = APIRouter(include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]


def _common(request: Request, ctx: Context) -> dict[str, object]:
    return {"read_only": ctx.read_only, "database": ctx.database, "root": _root(request)}


def _offset(value: str) -> int:
    """The listing offset of the query string: a whole number, capped like the API's (a link
    past the end shows an empty page).

    :raises ValueError: anything but ASCII digits (a sign, ``1e3``, ``²``, empty)."""
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"offset: must be a whole number from 0 (got {value[:40]!r})")
    # Thousands of digits are not converted (int() refuses past 4,300): past the cap anyway.
    return MAX_OFFSET if len(value) > len(str(MAX_OFFSET)) else min(int(value), MAX_OFFSET)


@router.get("/", response_class=HTMLResponse, name="dashboard_instances")
def instances(request: Request, ctx: Ctx) -> HTMLResponse:
    """The instance list, with filters, counts per status and paging. The filter form's
    fields are the API's query parameters; empty fields are left out."""
    params: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if value.strip():
            if name == "status":
                params.setdefault("status", []).append(value)
            else:
                params[name] = value
    offset = params.pop("offset", "0")
    problems: list[str] = []
    where, start = InstanceFilter(), 0
    try:
        where = InstanceFilter.model_validate(params)
    except ValidationError as exc:
        problems += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    try:
        start = _offset(offset if isinstance(offset, str) else str(offset))
    except ValueError as exc:
        problems.append(str(exc))
    problem = "; ".join(problems) or None
    records = [] if problem else ctx.store.list_instances(where, limit=PAGE_SIZE, offset=start)
    counts: dict[str, int] = {}
    per_saga = ctx.store.count_instances()
    for (_, status), count in per_saga.items():
        counts[status.value] = counts.get(status.value, 0) + count

    def page_link(to: int) -> str:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
        return "?" + urlencode([*query, ("offset", str(max(to, 0)))])

    return templates.TemplateResponse(
        request,
        "instances.html",
        {
            **_common(request, ctx),
            "records": records,
            "total": 0 if problem else ctx.store.count_matching(where),
            "offset": start,
            "limit": PAGE_SIZE,
            "where": where,
            "problem": problem,
            "statuses": [status.value for status in InstanceStatus],
            "status_counts": sorted(counts.items()),
            "saga_names": sorted({name for name, _ in per_saga}),
            "page_link": page_link,
        },
        status_code=422 if problem else 200,
    )


@router.get("/instances/{saga_id}", response_class=HTMLResponse, name="dashboard_instance")
def instance(request: Request, ctx: Ctx, saga_id: str) -> HTMLResponse:
    """One instance: graph coloured by step state, steps, data, timers, timeline, actions."""
    record = ctx.store.instance(saga_id)
    state = record.state
    definition = ctx.definition(state.saga_name, state.definition_version)
    return templates.TemplateResponse(
        request,
        "instance.html",
        {
            **_common(request, ctx),
            "state": state,
            "version": record.version,
            "graph": step_graph_svg(definition, state.steps),
            "legend": [(status.value, STEP_COLOURS[status]) for status in StepStatus],
            "data_json": json.dumps(state.data, indent=2, sort_keys=True),
            "timers": ctx.store.timers(saga_id),
            "log": ctx.store.log(saga_id),
            "describe": describe_effect,
            "actions": [action.value for action in OperatorAction],
            "operator_types": OPERATOR_EVENT_TYPES,
        },
    )


@router.get("/definitions", response_class=HTMLResponse, name="dashboard_definitions")
def definitions(request: Request, ctx: Ctx) -> HTMLResponse:
    """Every registered version of every definition, with its graph."""
    found = ctx.store.definitions()
    return templates.TemplateResponse(
        request,
        "definitions.html",
        {
            **_common(request, ctx),
            "definitions": [
                {
                    "name": d.name,
                    "version": d.version,
                    "description": d.description,
                    "trigger": d.trigger,
                    "correlation": d.correlation,
                    "deadline": format_duration(d.deadline) if d.deadline else None,
                }
                for d in found
            ],
            "graphs": [step_graph_svg(d) for d in found],
        },
    )
