"""Connector kinds: presets of transport, mappings and defaults for the systems supex connects.

Each module of this package defines one kind as ``KIND``; the registry finds them by name, so a
new kind is one module here plus its mapping, and nothing in the gateway changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from connectors.exceptions import UnknownKindError

__all__ = ["NEXT_CURSOR_HEADER", "ConnectorKind", "UnknownKindError", "connector_kind", "kind_names"]

# a polled system names the cursor after its page in this header (or a JSON page in its "next" member)
NEXT_CURSOR_HEADER = "X-Supex-Next-Cursor"


@dataclass(frozen=True)
class ConnectorKind:
    """What a kind of system speaks and how it reaches the gateway.

    ``mapping`` reads (and, if reversible, writes) the system's records of its own type;
    ``outbound`` names further mappings for the record types it receives in its own format
    (types without one arrive as standard JSON). Every kind may push to ``POST /v1/records``;
    ``sources`` says how else the gateway may fetch its records: ``poll`` (the gateway reads the
    system's HTTP API) and ``file`` (the system drops files into a watched folder).
    """

    name: str
    title: str
    description: str
    mapping: str | None = None
    outbound: Mapping[str, str] = field(default_factory=dict)
    sources: frozenset[str] = frozenset({"poll"})

    def mapping_for(self, record_type: str) -> str | None:
        """The mapping that writes ``record_type`` in this kind's format, if any."""
        return self.outbound.get(record_type)


@cache
def _registry() -> dict[str, ConnectorKind]:
    kinds = {}
    for module in pkgutil.iter_modules(__path__):
        kind = getattr(importlib.import_module(f"{__name__}.{module.name}"), "KIND", None)
        if isinstance(kind, ConnectorKind):
            kinds[kind.name] = kind
    return kinds


def kind_names() -> list[str]:
    """The names of the known kinds."""
    return sorted(_registry())


def connector_kind(name: str) -> ConnectorKind:
    """The kind called ``name``; ``UnknownKindError`` naming the known ones otherwise."""
    try:
        return _registry()[name]
    except KeyError:
        raise UnknownKindError(f"未知的连接器类型 / unknown connector kind {name!r} "
                               f"(known: {', '.join(kind_names())})") from None
