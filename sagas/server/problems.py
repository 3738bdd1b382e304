"""Errors as RFC 9457 problem details: ``application/problem+json`` with a clear ``detail``."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from sagas.errors import SagaError
from sagas.secrets import mask_urls
from sagas.store.base import StoreError, UnknownSagaError
from sagas.store.filters import WhereError

__all__ = [
    "PROBLEM_JSON",
    "ProblemDetail",
    "ProblemError",
    "install_problem_handlers",
    "problem",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"


class ProblemDetail(BaseModel):
    """An error (RFC 9457): ``detail`` says what is wrong; ``errors`` lists each bad field of a
    422 (``where``: e.g. ``query.status.0``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, str]] | None = None
    sagaId: str | None = None  # noqa: N815  (the wire name)


def problem(description: str) -> dict[str, Any]:
    """An OpenAPI response entry: a problem detail with ``description``."""
    schema = ProblemDetail.model_json_schema()
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schema}}}


class ProblemError(Exception):
    """Raise to answer with a problem detail."""

    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers, extra


def problem_response(
    request: Request,
    status: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem detail for ``request``."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": mask_urls(detail),  # e.g. a database error that quotes its URL
        "instance": request.url.path,
    } | extra
    return JSONResponse(
        jsonable_encoder(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem detail."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "where": ".".join(str(part) for part in error["loc"]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors)
        return problem_response(request, 422, f"invalid request: {detail}", errors=errors)

    @app.exception_handler(UnknownSagaError)
    async def _unknown(request: Request, exc: UnknownSagaError) -> JSONResponse:
        return problem_response(request, 404, str(exc))

    @app.exception_handler(WhereError)
    async def _where(request: Request, exc: WhereError) -> JSONResponse:
        return problem_response(request, 422, str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        return problem_response(request, 503, f"the database failed: {exc}")

    @app.exception_handler(SagaError)
    async def _saga(request: Request, exc: SagaError) -> JSONResponse:
        return problem_response(request, 400, str(exc))
