"""Request bodies of the API: read only from an authorised client, only up to a size limit,
and parsed strictly.

FastAPI reads a body before it solves dependencies, so a bearer-token dependency runs only
after anyone could make the server read and parse megabytes; and its parser lets the last of
two equal keys win and takes ``NaN``. :class:`GuardedRoute` (the route class of the API) puts
three steps in front of every route that takes a body, in this order:

1. the bearer token is checked (401/403): nothing of the body is read for a stranger;
2. the body is read up to :attr:`Context.max_body_bytes`, refused by its ``Content-Length``
   before any of it is read, or as soon as a body without one grows past the limit (413);
3. it is parsed with :func:`sagas.jsontext.parse_json` (422 saying why: a key twice, ``NaN``,
   nesting too deep, not UTF-8, a lone surrogate, not JSON), or refused when its content type
   is not JSON (415).

FastAPI then validates the parsed value against the route's model as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from sagas.jsontext import JSONTextError, parse_json
from sagas.server.context import authorize
from sagas.server.problems import ProblemError

__all__ = ["GuardedRoute", "read_body"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class GuardedRoute(APIRoute):
    """An API route whose request body is read only after the bearer token was checked, only
    up to the size limit, and parsed strictly (see the module)."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:  # nothing to read: FastAPI's handler as it is
            return handler

        async def guarded(request: Request) -> Response:
            ctx = await authorize(request)
            body = await read_body(request, ctx.max_body_bytes)
            value = _parse(body, request.headers.get("content-type"))
            return await handler(_ReadRequest(request.scope, request.receive, body, value))

        return guarded


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most ``limit`` bytes.

    :raises ProblemError: 413 when the declared ``Content-Length`` or the bytes received pass
        the limit (the rest is not read).
    """
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and _more_than(declared, limit):
        raise ProblemError(
            413, f"the request body ({_count(declared)} bytes) is larger than {limit:,} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"the request body is larger than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _more_than(digits: str, limit: int) -> bool:
    # A number of thousands of digits is never converted (int() refuses past 4,300).
    return len(digits) > 18 or int(digits) > limit


def _count(digits: str) -> str:
    return f"{int(digits):,}" if len(digits) <= 18 else f"a {len(digits)}-digit number of"


def _parse(body: bytes, content_type: str | None) -> Any:
    """The JSON value of ``body`` (``None`` when it is empty: FastAPI says what is missing)."""
    if not body:
        return None
    if not _is_json(content_type):
        raise ProblemError(
            415, f"the request body must be application/json, not {content_type or 'untyped'}"
        )
    try:
        return parse_json(body, max_bytes=None)  # the size was checked while reading
    except JSONTextError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": str(exc), "input": None}]
        ) from None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _ReadRequest(Request):
    """A request whose body was already read and parsed: FastAPI takes both from here."""

    def __init__(self, scope: Scope, receive: Receive, body: bytes, value: Any) -> None:
        super().__init__(scope, receive)
        self._read, self._value = body, value

    async def body(self) -> bytes:
        return self._read

    async def json(self) -> Any:
        return self._value
