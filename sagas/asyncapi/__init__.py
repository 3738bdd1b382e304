"""The event contract of saga definitions as an AsyncAPI 3.0 document: what the engine
consumes and publishes, with the CloudEvents attributes and the reply contract of commands."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

import yaml

from sagas.asyncapi.document import ASYNCAPI_VERSION, asyncapi_document
from sagas.definitions.model import SagaDefinition

__all__ = ["ASYNCAPI_VERSION", "Format", "asyncapi_document", "asyncapi_text", "render"]

Format = Literal["json", "yaml"]
"""The formats a document is written in."""


def render(document: dict[str, Any], fmt: Format = "json") -> str:
    """``document`` as JSON (indented) or YAML text, ending with a newline, keys in the
    document's order."""
    if fmt == "yaml":
        # libyaml's emitter when PyYAML has it: the pure-Python one takes seconds on megabytes.
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text: str = yaml.dump(
            document, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100
        )
        return text
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def asyncapi_text(definitions: Iterable[SagaDefinition], fmt: Format = "json") -> str:
    """The AsyncAPI 3.0 document of ``definitions`` as text (see :func:`asyncapi_document`)."""
    return render(asyncapi_document(definitions), fmt)
