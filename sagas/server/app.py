"""``create_app``: the ASGI application of ``sagas serve`` (API, dashboard, metrics)."""

from __future__ import annotations

from importlib import resources

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sagas.clock import Clock, SystemClock
from sagas.intake import DEFAULT_MAX_EVENT_BYTES, Intake
from sagas.jsontext import DEFAULT_MAX_BYTES
from sagas.secrets import mask_url
from sagas.server import api, contract, dashboard
from sagas.server.context import Context, no_nul_characters
from sagas.server.dead_letter_page import router as dead_letter_page
from sagas.server.dead_letters import dead_letters_router
from sagas.server.docs import install_docs
from sagas.server.events import DEFAULT_MAX_BATCH_EVENTS, events_router
from sagas.server.metrics import metrics_registry
from sagas.server.problems import install_problem_handlers
from sagas.server.security import SecurityHeaders
from sagas.store.base import Store

__all__ = ["create_app"]


def create_app(
    store: Store,
    *,
    token: str | None,
    read_only: bool = False,
    clock: Clock | None = None,
    database: str = "",
    max_body_bytes: int = DEFAULT_MAX_BYTES,
    publish_token: str | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
) -> FastAPI:
    """The app on ``store``. Mutating requests need ``Authorization: Bearer <token>``; with
    ``read_only`` (or no token) there are none. ``database`` is shown in the dashboard, its
    password masked. A request body larger than ``max_body_bytes`` is refused (413).
    ``POST /events`` takes events sent with ``publish_token`` (none without it, or read-only),
    each at most ``max_event_bytes``, at most ``max_batch_events`` in one request.
    Links and assets are paths under the server's root path (``uvicorn --root-path``, set
    behind a proxy), never URLs built from the request's ``Host`` header."""
    app = FastAPI(
        title="sagas",
        summary="Saga instances, definitions, statistics and operator actions.",
        version=_version(),
        dependencies=[Depends(no_nul_characters)],
        docs_url=None,  # served by install_docs, from the package instead of a CDN
        redoc_url=None,  # ReDoc would load from a CDN
        swagger_ui_oauth2_redirect_url=None,
        # A redirect to the other spelling of a path would name the Host header's host.
        redirect_slashes=False,
    )
    ctx = Context(
        store,
        clock or SystemClock(),
        token,
        read_only or token is None,
        mask_url(database),
        max_body_bytes,
        None if read_only else publish_token,
    )
    app.state.context = ctx
    install_problem_handlers(app)
    app.include_router(api.router)
    app.include_router(events_router(Intake(max_event_bytes), max_batch_events))
    app.include_router(dead_letters_router(Intake(max_event_bytes)))
    app.include_router(contract.router)
    app.include_router(dashboard.router)
    app.include_router(dead_letter_page)
    install_docs(app, "sagas")
    app.add_middleware(SecurityHeaders)
    static = resources.files("sagas.server") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    registry = metrics_registry(ctx)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Whether the server can read its database."""
        ctx.store.backlog(ctx.clock.now())
        return {"status": "ok"}

    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sagas-engine")
    except PackageNotFoundError:
        return "0"
