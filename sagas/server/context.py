"""What every request of the server shares: the store, the clock, operations and settings."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, ValidationError

from sagas.clock import Clock
from sagas.definitions.model import SagaDefinition
from sagas.engine.state import InstanceStatus
from sagas.jsontext import DEFAULT_MAX_BYTES
from sagas.operations import Operations
from sagas.server.problems import ProblemError
from sagas.store.base import Store
from sagas.store.filters import MAX_VERSION, InstanceFilter

__all__ = [
    "MAX_OFFSET",
    "Authorized",
    "Context",
    "Filter",
    "authorize",
    "context",
    "instance_filter",
    "no_nul_characters",
]


MAX_OFFSET = 10_000_000
"""The largest listing offset a request may ask for."""


@dataclass
class Context:
    """The server's shared parts; ``token`` is ``None`` only on a read-only server.
    ``database`` is what the dashboard shows (its password masked); ``max_body_bytes`` is the
    largest request body the API reads."""

    store: Store
    clock: Clock
    token: str | None
    read_only: bool
    database: str = ""
    max_body_bytes: int = DEFAULT_MAX_BYTES
    publish_token: str | None = None
    """The token of ``POST /events`` (see :mod:`sagas.server.events`); ``None``: no events."""
    operations: Operations = field(init=False)

    def __post_init__(self) -> None:
        self.operations = Operations(self.store, self.clock)

    def definition(self, name: str, version: int) -> SagaDefinition:
        """One registered version.

        :raises LookupError: when it was never registered.
        """
        return self.operations.definition(name, version)


def context(request: Request) -> Context:
    """The request's :class:`Context`."""
    found: Context = request.app.state.context
    return found


_bearer = HTTPBearer(auto_error=False, description="The operator token of `sagas serve`.")


def check_token(ctx: Context, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Let a mutating request through only with the server's bearer token.

    :raises ProblemError: 403 on a read-only server, 401 without the token or with another.
    """
    if ctx.read_only or ctx.token is None:
        raise ProblemError(403, "this server is read-only (sagas serve --read-only): no actions")
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ProblemError(
            401, "missing bearer token: send 'Authorization: Bearer <token>'", challenge
        )
    given = credentials.credentials.encode()
    if ctx.publish_token is not None and secrets.compare_digest(given, ctx.publish_token.encode()):
        raise ProblemError(403, "the publish token only publishes events (POST /events)")
    if not secrets.compare_digest(given, ctx.token.encode()):
        raise ProblemError(401, "wrong bearer token", challenge)


async def authorize(request: Request) -> Context:
    """The request's context once its bearer token was checked (see :func:`check_token`);
    for code that must check it before FastAPI reads the body."""
    ctx = context(request)
    check_token(ctx, await _bearer(request))
    return ctx


def _authorized(
    ctx: Annotated[Context, Depends(context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Context:
    check_token(ctx, credentials)
    return ctx


Authorized = Annotated[Context, Depends(_authorized)]
"""A context for a mutating request: the bearer token was checked."""


def instance_filter(
    status: Annotated[list[InstanceStatus], Query(description="Any of these statuses.")] = [],  # noqa: B006
    saga: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    key: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    failed_step: Annotated[
        str | None, Query(alias="failedStep", min_length=1, max_length=200)
    ] = None,
    waiting_timer: Annotated[bool, Query(alias="waitingTimer")] = False,
    started_after: Annotated[AwareDatetime | None, Query(alias="startedAfter")] = None,
    started_before: Annotated[AwareDatetime | None, Query(alias="startedBefore")] = None,
    updated_after: Annotated[AwareDatetime | None, Query(alias="updatedAfter")] = None,
    updated_before: Annotated[AwareDatetime | None, Query(alias="updatedBefore")] = None,
) -> InstanceFilter:
    """The instance filter of a request's query parameters (malformed ones: 422)."""
    try:
        where = InstanceFilter(
            status=tuple(status),
            saga=saga,
            version=version,
            key=key,
            failed_step=failed_step,
            waiting_timer=waiting_timer,
            started_after=started_after,
            started_before=started_before,
            updated_after=updated_after,
            updated_before=updated_before,
        )
    except ValidationError as exc:
        raise RequestValidationError([_as_query(error) for error in exc.errors()]) from None
    return where


def _as_query(error: Any) -> dict[str, Any]:
    """A filter's validation error, located at the query parameter (by its wire name)."""
    name, *rest = error["loc"] or ("",)
    field = InstanceFilter.model_fields.get(str(name))
    wire = field.alias if field is not None and field.alias else name
    return {**error, "loc": ("query", wire, *rest)}


Filter = Annotated[InstanceFilter, Depends(instance_filter)]


def no_nul_characters(request: Request) -> None:
    """A NUL character in the path or a query parameter is a 422: PostgreSQL cannot hold one
    in a text value, so it would fail the query (a 503 for a malformed request)."""
    message = "must not contain NUL characters (\\u0000)"
    errors: list[dict[str, object]] = []
    if "\x00" in request.url.path:
        errors.append({"type": "value_error", "loc": ("path",), "msg": message, "input": None})
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            where = ("query", name.replace("\x00", "\\u0000"))
            errors.append({"type": "value_error", "loc": where, "msg": message, "input": None})
    if errors:
        raise RequestValidationError(errors)
