"""``sagas serve``: the HTTP API, the dashboard and ``/metrics`` on one database."""

from __future__ import annotations

from pathlib import Path

import click

from sagas.cli.common import db_option, open_store, reports_errors
from sagas.jsontext import DEFAULT_MAX_BYTES

__all__ = ["serve"]

TOKEN_ENV = "SAGAS_API_TOKEN"


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
@reports_errors
def serve(
    db: str,
    host: str,
    port: int,
    token: str | None,
    token_file: Path | None,
    read_only: bool,
    root_path: str,
    max_body_bytes: int,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs), the web dashboard and Prometheus /metrics.

    Operator actions need a bearer token: give --token, --token-file or $SAGAS_API_TOKEN, or
    start with --read-only."""
    import uvicorn

    from sagas.server import create_app

    if token_file is not None:
        lines = token_file.read_text(encoding="utf-8").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise click.BadParameter(f"{token_file} holds no token", param_hint="--token-file")
    if token is not None and len(token) < 16:
        raise click.BadParameter("use a token of at least 16 characters", param_hint="--token")
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
    )
    click.echo(
        f"sagas serve: dashboard http://{host}:{port}/  API http://{host}:{port}/docs  "
        f"({'read-only' if read_only else 'operator actions need the token'})"
    )
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", root_path=root_path.rstrip("/"))
    finally:
        store.close()
