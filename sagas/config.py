"""The worker's configuration file, ``engine/sagas.toml`` is the reference."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from sagas.definitions.durations import Duration, format_duration
from sagas.errors import SagaError
from sagas.intake import DEFAULT_MAX_EVENT_BYTES

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_POLL_INTERVAL",
    "ConfigError",
    "EngineConfig",
    "check_poll_interval",
    "load_config",
]

MAX_BATCH_SIZE = 10_000
"""The most events a worker decides in one transaction."""
MAX_POLL_INTERVAL = timedelta(hours=1)
"""The longest an idle worker waits before looking for work again."""


def check_poll_interval(value: timedelta) -> timedelta:
    """``value`` if it is a usable idle wait: more than zero (zero would spin a core), at most
    :data:`MAX_POLL_INTERVAL`.

    :raises ValueError: naming the bounds.
    """
    if not timedelta() < value <= MAX_POLL_INTERVAL:
        raise ValueError(
            f"the poll interval must be more than 0 and at most "
            f"{format_duration(MAX_POLL_INTERVAL)} (got {format_duration(value)})"
        )
    return value


class ConfigError(SagaError):
    """The configuration file is unreadable or invalid; the message names file and key."""


class EngineConfig(BaseModel):
    """How a worker runs. Relative paths are relative to the configuration file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL or SQLite file; --db and SAGAS_DATABASE_URL win.",
        repr=False,  # it may hold a password: never in a logged or printed config
    )
    definitions: tuple[Path, ...] = Field((), description="Definition files or folders.")
    handler_modules: tuple[str, ...] = Field(
        (), description="Modules defining `handlers` and/or `subscribe(bus)`."
    )
    concurrency: int = Field(1, ge=1, le=1024, description="Handlers/subscribers run at once.")
    batch_size: int = Field(
        200, ge=1, le=MAX_BATCH_SIZE, description="Events decided per transaction."
    )
    poll_interval: Annotated[Duration, AfterValidator(check_poll_interval)] = Field(
        timedelta(milliseconds=50), description="Idle wait (more than 0, at most 1h)."
    )
    lease: Duration = Field(
        timedelta(seconds=10),
        description="How long a worker owns the effects it committed before another worker "
        "may carry them out (a worker that died).",
    )
    max_event_bytes: int = Field(
        DEFAULT_MAX_EVENT_BYTES,
        ge=1024,
        le=64 * 1024 * 1024,
        description="The largest event taken from outside (its JSON text, in bytes): "
        "published on the bus or by a participant (see sagas.intake).",
    )


def load_config(path: str | Path) -> EngineConfig:
    """Read the ``[engine]`` table of a TOML file.

    :raises ConfigError: naming the file and the offending key.
    """
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}") from None
    unknown = sorted(set(raw) - {"engine"})
    if unknown:
        raise ConfigError(f"{file}: unknown table(s) {', '.join(unknown)}; expected [engine]")
    table: dict[str, Any] = dict(raw.get("engine", {}))
    if "definitions" in table and isinstance(table["definitions"], list):
        table["definitions"] = [file.parent / str(p) for p in table["definitions"]]
    try:
        return EngineConfig.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(
            f"engine.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{file}: {problems}") from None
