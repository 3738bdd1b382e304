"""The ``sagas`` command line."""

from __future__ import annotations

import click

from sagas.cli.definitions import graph, schema, validate

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagas-engine")
def cli() -> None:
    """Event-driven saga orchestration: define, run, watch and steer sagas."""


cli.add_command(validate)
cli.add_command(graph)
cli.add_command(schema)


def main() -> None:
    """Entry point of the ``sagas`` console script."""
    cli()
