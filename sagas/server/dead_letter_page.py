"""The dashboard's dead-letter page: what the engine could not use, filtered, with replay
and drop buttons (they call the API with the operator token the page keeps in the tab's
``sessionStorage``, as the instance page does)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from sagas.operations.dead_letters import DeadLetters
from sagas.server.context import Context, context
from sagas.server.dashboard import templates
from sagas.store.dead_letters import DeadLetterFilter

__all__ = ["router"]

PAGE_SIZE = 100
PREVIEW_CHARS = 2000
"""How much of a payload the page shows (the API's ``GET /api/dead-letters/{id}`` has all)."""
_FIELDS = {"reason": "reason", "eventType": "event_type", "source": "source", "sagaId": "saga_id"}

router = APIRouter(include_in_schema=False)
Ctx = Annotated[Context, Depends(context)]


@router.get("/dead-letters", response_class=HTMLResponse, name="dashboard_dead_letters")
def dead_letters(request: Request, ctx: Ctx) -> HTMLResponse:
    """The most recent dead letters the filter form selects (its fields are the API's query
    parameters; empty ones are left out)."""
    given = {
        field: value
        for name, field in _FIELDS.items()
        if (value := request.query_params.get(name, "").strip())
    }
    problem = None
    where = DeadLetterFilter()
    try:
        where = DeadLetterFilter.model_validate(given)
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    letters = DeadLetters(ctx.store)
    found = [] if problem else letters.find(where, limit=PAGE_SIZE)
    rows: list[dict[str, Any]] = []
    for letter in found:
        text = letter.payload if letter.encoding == "text" else f"(base64) {letter.payload}"
        rows.append(
            {
                "letter": letter,
                "preview": text[:PREVIEW_CHARS],
                "cut": len(text) > PREVIEW_CHARS,
            }
        )
    return templates.TemplateResponse(
        request,
        "dead_letters.html",
        {
            "read_only": ctx.read_only,
            "database": ctx.database,
            "root": str(request.scope.get("root_path", "")).rstrip("/"),
            "rows": rows,
            "total": 0 if problem else letters.count(where),
            "where": where,
            "problem": problem,
        },
        status_code=422 if problem else 200,
    )
