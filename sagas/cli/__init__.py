"""The ``sagas`` command line."""

from __future__ import annotations

import os
import sys

import click

from sagas.cli.asyncapi import asyncapi
from sagas.cli.db import db
from sagas.cli.dead_letters import dead_letters
from sagas.cli.definitions import graph, list_definitions, schema, validate
from sagas.cli.demo import demo
from sagas.cli.inspect import list_instances, show
from sagas.cli.operate import ACTIONS
from sagas.cli.runtime import publish, worker
from sagas.cli.serve import serve
from sagas.cli.stats import stats

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagas-engine")
def cli() -> None:
    """Event-driven saga orchestration: define, run, watch and steer sagas."""
    # Handler modules of the project in the current folder import as they would with `python -m`.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


COMMANDS = (
    validate,
    graph,
    schema,
    asyncapi,
    list_definitions,
    worker,
    publish,
    list_instances,
    show,
    stats,
    *ACTIONS,
)
for command in (*COMMANDS, dead_letters, serve, demo, db):
    cli.add_command(command)


def main() -> None:
    """Entry point of the ``sagas`` console script."""
    cli()
