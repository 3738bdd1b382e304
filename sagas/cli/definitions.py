"""CLI commands about saga definitions: ``validate``, ``graph``, ``schema``, and
``definitions`` (the registered versions, with their running instances)."""

from __future__ import annotations

import json
import re
import sys

import click
from rich.table import Table
from rich.text import Text

from sagas.cli.common import console, db_option, open_store, reports_errors
from sagas.definitions import (
    definition_files,
    json_schema_text,
    load_definition,
    to_dot,
    to_mermaid,
)
from sagas.definitions.model import MAX_NAME_LENGTH, NAME_PATTERN, pattern_problem
from sagas.errors import DefinitionError, SagaError
from sagas.handlers import import_handlers
from sagas.store.base import DefinitionVersion

__all__ = ["graph", "list_definitions", "schema", "validate"]


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
    except OSError as exc:
        raise click.ClickException(f"{file}: cannot read: {exc.strerror or exc}") from None
    click.echo(to_mermaid(definition) if fmt == "mermaid" else to_dot(definition), nl=False)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the YAML definition format."""
    click.echo(json_schema_text(), nl=False)


@click.command("definitions")
@click.option("--saga", "name", metavar="NAME", help="Only the versions of this saga.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@db_option()
@reports_errors
def list_definitions(name: str | None, as_json: bool, db: str) -> None:
    """List the registered definition versions, oldest first per saga: when each was registered
    last (the latest, marked current, is what new instances start on) and how many of its
    instances are still running (not ended): a version without any can be retired."""
    if name is not None and len(name) > MAX_NAME_LENGTH:
        message = f"a saga name is at most {MAX_NAME_LENGTH} characters"
        raise click.BadParameter(message, param_hint="--saga")
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        raise click.BadParameter(pattern_problem(name, NAME_PATTERN), param_hint="--saga")
    store = open_store(db, read_only=True)
    try:
        versions = store.definition_versions(name)
        found = {(d.name, d.version): d for d in store.definitions(name)}
    finally:
        store.close()
    current: dict[str, DefinitionVersion] = {}
    for entry in versions:
        if entry.name not in current or entry.registered_at >= current[entry.name].registered_at:
            current[entry.name] = entry
    # A version registered between the two reads is left out rather than shown half.
    listed = [
        (entry, definition)
        for entry in versions
        if (definition := found.get((entry.name, entry.version))) is not None
    ]
    if as_json:
        rows = [
            {
                "saga": entry.name,
                "version": entry.version,
                "current": current[entry.name] is entry,
                "lastRegistered": entry.registered_at.isoformat(),
                "trigger": definition.trigger,
                "steps": len(definition.steps),
                "running": entry.running,
            }
            for entry, definition in listed
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Registered saga definitions (current: what new instances start on)")
    for column in ("saga", "version", "current", "last registered (UTC)", "trigger"):
        table.add_column(column, justify="right" if column == "version" else "left")
    table.add_column("steps", justify="right")
    table.add_column("running", justify="right")
    for entry, definition in listed:
        cells = (
            entry.name,
            str(entry.version),
            "current" if current[entry.name] is entry else "",
            f"{entry.registered_at:%Y-%m-%d %H:%M:%S}",
            definition.trigger,
            str(len(definition.steps)),
            str(entry.running),
        )
        # Text, not markup: names come from definition files.
        table.add_row(*(Text(cell) for cell in cells))
    console().print(table)
