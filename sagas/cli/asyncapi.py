"""``sagas asyncapi``: the event contract of the sagas as an AsyncAPI 3.0 document."""

from __future__ import annotations

from pathlib import Path

import click

from sagas.asyncapi import Format, asyncapi_text
from sagas.cli.common import db_option, open_store, reports_errors
from sagas.definitions import SagaDefinition, load_definitions
from sagas.errors import DefinitionError

__all__ = ["asyncapi"]


@click.command()
@click.option(
    "--definitions",
    "paths",
    multiple=True,
    type=click.Path(),
    metavar="PATH",
    help="Saga definition files or folders (repeatable); without it, the definitions "
    "registered in the database.",
)
@db_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "yaml"]),
    default="json",
    show_default=True,
    help="JSON or YAML.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    metavar="FILE",
    help="Write the document to FILE instead of standard output.",
)
@reports_errors
def asyncapi(paths: tuple[str, ...], db: str, fmt: Format, output: str | None) -> None:
    """Write the AsyncAPI 3.0 document of every event the sagas consume and publish:
    triggers, commands, replies and awaited events, with their CloudEvents attributes.

    Every registered version counts (older ones may still run); with --definitions, the
    files are read and the database is not opened.
    """
    text = asyncapi_text(_definitions(paths, db), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"{output}: AsyncAPI 3.0 document written", err=True)


def _definitions(paths: tuple[str, ...], db: str) -> list[SagaDefinition]:
    if paths:
        try:
            return load_definitions(paths)
        except FileNotFoundError as exc:
            raise click.BadParameter(str(exc), param_hint="--definitions") from None
        except DefinitionError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            message = f"cannot read {exc.filename}: {exc.strerror or exc}"
            raise click.BadParameter(message, param_hint="--definitions") from None
    store = open_store(db, read_only=True)
    try:
        return store.definitions()
    finally:
        store.close()
