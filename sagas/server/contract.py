"""``/asyncapi.json`` and ``/asyncapi.yaml``: the event contract of the registered sagas as an
AsyncAPI 3.0 document, beside the OpenAPI document of the HTTP API (and, like it, readable
without a token: it says what the sagas exchange, nothing about their instances)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sagas.asyncapi import asyncapi_document, render
from sagas.server.context import Context, context

__all__ = ["router"]

router = APIRouter(tags=["contract"])
Ctx = Annotated[Context, Depends(context)]
YAML = "application/yaml"
_DESCRIPTION = (
    "The AsyncAPI 3.0 document of every event the registered saga definitions (every version) "
    "consume and publish: triggers, commands, replies and awaited events, with their "
    "CloudEvents attributes. The same as `sagas asyncapi`."
)


@router.get(
    "/asyncapi.json",
    summary="The event contract (AsyncAPI 3.0, JSON)",
    description=_DESCRIPTION,
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def asyncapi_json(ctx: Ctx) -> Response:
    """The AsyncAPI document as JSON."""
    return Response(render(_document(ctx), "json"), media_type="application/json")


@router.get(
    "/asyncapi.yaml",
    summary="The event contract (AsyncAPI 3.0, YAML)",
    description=_DESCRIPTION,
    response_model=None,
    responses={200: {"content": {YAML: {"schema": {"type": "string"}}}}},
)
def asyncapi_yaml(ctx: Ctx) -> Response:
    """The AsyncAPI document as YAML."""
    return Response(render(_document(ctx), "yaml"), media_type=YAML)


def _document(ctx: Context) -> dict[str, Any]:
    # Read for each request: definitions are registered while the server runs.
    return asyncapi_document(ctx.store.definitions())
