"""CLI commands about saga definitions: ``validate``, ``graph``, ``schema``."""

from __future__ import annotations

import sys

import click

from sagas.definitions import (
    definition_files,
    json_schema_text,
    load_definition,
    to_dot,
    to_mermaid,
)
from sagas.errors import DefinitionError, SagaError
from sagas.handlers import import_handlers

__all__ = ["graph", "schema", "validate"]


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--handlers",
    "handler_modules",
    multiple=True,
    metavar="MODULE",
    help="Also check handler names against the `handlers` registry of MODULE (repeatable).",
)
def validate(paths: tuple[str, ...], handler_modules: tuple[str, ...]) -> None:
    """Validate saga definition files (folders are searched for *.yaml and *.yml).

    Prints one line per valid saga; otherwise every problem as `file:line: field: message`
    and exits with status 1.
    """
    try:
        files = definition_files(paths)
        handlers = set(import_handlers(handler_modules)) if handler_modules else None
    except (FileNotFoundError, SagaError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not files:
        raise click.ClickException(f"no saga definitions (*.yaml, *.yml) in {', '.join(paths)}")
    failed = False
    for file in files:
        try:
            definition = load_definition(file, handlers)
        except DefinitionError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(str(problem))
            continue
        except OSError as exc:
            failed = True
            click.echo(f"{file}: cannot read: {exc.strerror or exc}")
            continue
        pivot = next((step.name for step in definition.steps if step.pivot), None)
        click.echo(
            f"{file}: ok: {definition.name} v{definition.version}, "
            f"{len(definition.steps)} steps, trigger {definition.trigger}"
            + (f", pivot {pivot}" if pivot else "")
        )
    if failed:
        sys.exit(1)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid flowchart or Graphviz DOT.",
)
def graph(file: str, fmt: str) -> None:
    """Print the step graph of a saga definition, with its compensations."""
    try:
        definition = load_definition(file)
    except DefinitionError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    click.echo(to_mermaid(definition) if fmt == "mermaid" else to_dot(definition), nl=False)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the YAML definition format."""
    click.echo(json_schema_text(), nl=False)
