"""``sagas serve``: the HTTP API, the dashboard and ``/metrics`` on one database."""

from __future__ import annotations

from pathlib import Path

import click

from sagas.cli.common import db_option, max_event_bytes_option, open_store, reports_errors
from sagas.jsontext import DEFAULT_MAX_BYTES
from sagas.server.events import DEFAULT_MAX_BATCH_EVENTS

__all__ = ["serve"]

TOKEN_ENV = "SAGAS_API_TOKEN"
PUBLISH_TOKEN_ENV = "SAGAS_PUBLISH_TOKEN"
MIN_TOKEN_LENGTH = 16


@click.command()
@db_option()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    metavar="TOKEN",
    help=f"Bearer token that operator actions must send (env {TOKEN_ENV}).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the token from this file (first line).",
)
@click.option(
    "--publish-token",
    envvar=PUBLISH_TOKEN_ENV,
    metavar="TOKEN",
    help="Bearer token that POST /events needs, and nothing else "
    f"(env {PUBLISH_TOKEN_ENV}); without it the server takes no events.",
)
@click.option(
    "--publish-token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the publish token from this file (first line).",
)
@click.option("--read-only", is_flag=True, help="Serve without operator actions (no token).")
@click.option(
    "--root-path",
    default="",
    metavar="PATH",
    help="The path a proxy serves the app under (e.g. /sagas): links and assets go under it.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1024, 64 * 1024 * 1024),
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    metavar="BYTES",
    help="The largest API request body read (larger ones: 413).",
)
@max_event_bytes_option("The largest event POST /events takes (larger ones: 413).")
@click.option(
    "--max-batch-events",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_MAX_BATCH_EVENTS,
    show_default=True,
    metavar="N",
    help="The most events one POST /events request may carry (more: 413).",
)
@reports_errors
def serve(
    db: str,
    host: str,
    port: int,
    token: str | None,
    token_file: Path | None,
    publish_token: str | None,
    publish_token_file: Path | None,
    read_only: bool,
    root_path: str,
    max_body_bytes: int,
    max_event_bytes: int,
    max_batch_events: int,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs), the web dashboard and Prometheus /metrics.

    Operator actions need a bearer token: give --token, --token-file or $SAGAS_API_TOKEN, or
    start with --read-only. POST /events needs the publish token (--publish-token,
    --publish-token-file or $SAGAS_PUBLISH_TOKEN), a different one: it allows nothing else."""
    import uvicorn

    from sagas.server import create_app

    if token_file is not None:
        token = _read_token(token_file, "--token-file")
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise click.BadParameter("use a token of at least 16 characters", param_hint="--token")
    if publish_token_file is not None:
        publish_token = _read_token(publish_token_file, "--publish-token-file")
    if publish_token is not None:
        if len(publish_token) < MIN_TOKEN_LENGTH:
            raise click.BadParameter(
                "use a token of at least 16 characters", param_hint="--publish-token"
            )
        if read_only:
            raise click.UsageError("a read-only server takes no events: drop --publish-token")
        if publish_token == token:
            raise click.BadParameter(
                "the publish token must differ from the operator token",
                param_hint="--publish-token",
            )
    if token is None and not read_only:
        raise click.UsageError(
            f"no token: operator actions need one (--token, --token-file or ${TOKEN_ENV}); "
            "or start with --read-only"
        )
    if root_path and (not root_path.startswith("/") or "//" in root_path or "\\" in root_path):
        raise click.BadParameter("a path that starts with /, e.g. /sagas", param_hint="--root-path")
    store = open_store(db, must_exist=True, read_only=read_only)
    app = create_app(
        store,
        token=None if read_only else token,
        read_only=read_only,
        database=db,
        max_body_bytes=max_body_bytes,
        publish_token=publish_token,
        max_event_bytes=max_event_bytes,
        max_batch_events=max_batch_events,
    )
    click.echo(
        f"sagas serve: dashboard http://{host}:{port}/  API http://{host}:{port}/docs  "
        f"({'read-only' if read_only else 'operator actions need the token'}"
        f"{'; POST /events needs the publish token' if publish_token else ''})"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", root_path=root_path.rstrip("/"))
    finally:
        store.close()


def _read_token(path: Path, option: str) -> str:
    """The token on the first line of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise click.BadParameter(f"{path} holds no token", param_hint=option)
    return token
