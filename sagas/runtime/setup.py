"""Building a ready engine from a configuration: store, handler modules, definitions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sagas.clock import Clock
from sagas.config import EngineConfig
from sagas.definitions.loader import load_definitions
from sagas.definitions.model import SagaDefinition
from sagas.handlers import import_handler_modules
from sagas.intake import Intake
from sagas.runtime.engine import Engine
from sagas.store.sql import DEFAULT_DATABASE_URL, SQLStore

__all__ = ["build_engine"]


def build_engine(
    config: EngineConfig,
    *,
    database_url: str | None = None,
    clock: Clock | None = None,
    extra_definitions: Sequence[SagaDefinition] = (),
) -> Engine:
    """An engine on ``database_url`` (else the configuration's, else ``sqlite:///sagas.db``)
    with the configured handler modules attached and definitions registered.

    :raises DefinitionError: when a definition is invalid or names an unregistered handler.
    :raises SagaError: when a handler module cannot be used.
    :raises StoreError: when the database cannot be reached.
    """
    modules = import_handler_modules(config.handler_modules)
    store = SQLStore(database_url or config.database_url or DEFAULT_DATABASE_URL)
    engine = Engine(
        store,
        clock=clock,
        batch_size=config.batch_size,
        concurrency=config.concurrency,
        lease=config.lease,
    )
    engine.bus.intake = Intake(config.max_event_bytes)
    try:
        for module in modules:
            engine.handlers.update(getattr(module, "handlers", None) or {})
            subscribe = getattr(module, "subscribe", None)
            if callable(subscribe):
                subscribe(engine.bus)
        paths: list[Path] = list(config.definitions)
        definitions = load_definitions(paths, set(engine.handlers)) if paths else []
        for definition in [*definitions, *extra_definitions]:
            engine.register(definition)
    except BaseException:
        engine.close()
        raise
    return engine
