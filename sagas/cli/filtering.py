"""The options that select instances, shared by ``sagas list``, ``sagas stats`` and the bulk
forms of the operator actions: they all build one :class:`InstanceFilter`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from sagas.clock import SystemClock
from sagas.engine.state import InstanceStatus
from sagas.store.filters import WHERE_FIELDS, InstanceFilter, WhereError, parse_where

__all__ = ["build_filter", "filter_options", "where_option"]

F = TypeVar("F", bound=Callable[..., Any])


def where_option(command: F) -> F:
    """``--where FIELD=VALUE`` (repeatable)."""
    return click.option(
        "--where",
        "where",
        multiple=True,
        metavar="CLAUSE",
        help=(
            f"Select instances: FIELD=VALUE, repeatable, all must hold. Fields: "
            f"{', '.join(WHERE_FIELDS)}; times take >= or < with a time or a duration "
            "before now (updated>=2h)."
        ),
    )(command)


def filter_options(command: F) -> F:
    """The filter options of ``sagas list`` (each one is also a ``--where`` clause)."""
    options = [
        click.option(
            "--status",
            multiple=True,
            type=click.Choice([s.value for s in InstanceStatus]),
            help="Only instances with this status (repeatable).",
        ),
        click.option("--saga", metavar="NAME", help="Only instances of this saga."),
        click.option(
            "--version", "saga_version", type=click.IntRange(1), help="...of this version."
        ),
        click.option(
            "--key", metavar="KEY", help="Only the instance(s) with this correlation key."
        ),
        click.option("--failed-step", metavar="STEP", help="Only instances that failed at STEP."),
        click.option(
            "--waiting-timer",
            is_flag=True,
            help="Only instances sleeping on a timer (a retry's back-off or a delay step).",
        ),
        click.option("--since", metavar="TIME", help="Updated at or after (time or 2h ago)."),
        click.option("--until", metavar="TIME", help="Updated before (time or 2h ago)."),
        where_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def build_filter(options: dict[str, Any]) -> InstanceFilter:
    """The filter of the options ``filter_options`` and ``where_option`` added (popped from
    ``options``)."""
    clauses = list(options.pop("where", ()))
    statuses = options.pop("status", ())
    if statuses:
        clauses.append(f"status={','.join(statuses)}")
    named = {"saga": "saga", "saga_version": "version", "key": "key", "failed_step": "failed_step"}
    for option, field in named.items():
        value = options.pop(option, None)
        if value is not None:
            clauses.append(f"{field}={value}")
    if options.pop("waiting_timer", False):
        clauses.append("waiting_timer=true")
    for option, operator in (("since", ">="), ("until", "<")):
        value = options.pop(option, None)
        if value is not None:
            clauses.append(f"updated{operator}{value}")
    try:
        return parse_where(clauses, SystemClock().now())
    except WhereError as exc:
        raise click.UsageError(str(exc)) from None
