"""The standard interface v1 as data: the schema files, the code tables and the catalogue.

Everything is read once from the package's own data files and handed out as plain,
read-only values; nothing here touches the network or the file system beyond the package.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from schemas.exceptions import UnknownRecordTypeError

__all__ = [
    "COMMON_ID",
    "ENVELOPE_ID",
    "CodeTable",
    "RecordTypeInfo",
    "SchemaSet",
    "load_schema_set",
]

COMMON_ID = "urn:supex:v1:common"
ENVELOPE_ID = "urn:supex:v1:envelope"
_PACKAGE = resources.files("schemas")


def _read_json(*parts: str) -> Any:
    return json.loads(_PACKAGE.joinpath(*parts).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class CodeTable:
    """A code table: codes with their Chinese and English labels, looked up both ways."""

    id: str
    title: str
    description: str
    labels: Mapping[str, str]
    labels_en: Mapping[str, str]

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes, in the table's order."""
        return tuple(self.labels)

    def code_for_label(self, label: str) -> str | None:
        """The code whose Chinese label is ``label``, or ``None``."""
        for code, text in self.labels.items():
            if text == label:
                return code
        return None


@dataclass(frozen=True)
class RecordTypeInfo:
    """What the catalogue says of a record type besides its schema."""

    name: str
    title: str
    description: str
    sharing: str
    event_times: tuple[str, ...]
    time_order: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SchemaSet:
    """The schemas (by record type), the shared definitions, the code tables and the catalogue."""

    version: str
    schemas: Mapping[str, Mapping[str, Any]]
    common: Mapping[str, Any]
    envelope: Mapping[str, Any]
    code_tables: Mapping[str, CodeTable]
    types: Mapping[str, RecordTypeInfo] = field(default_factory=dict)

    @property
    def record_types(self) -> tuple[str, ...]:
        """The record type names, in catalogue order."""
        return tuple(self.types)

    def schema(self, record_type: str) -> Mapping[str, Any]:
        """The JSON Schema of ``record_type``; raises ``UnknownRecordTypeError``."""
        try:
            return self.schemas[record_type]
        except KeyError:
            raise UnknownRecordTypeError(record_type) from None

    def info(self, record_type: str) -> RecordTypeInfo:
        """The catalogue entry of ``record_type``; raises ``UnknownRecordTypeError``."""
        try:
            return self.types[record_type]
        except KeyError:
            raise UnknownRecordTypeError(record_type) from None

    def shared_resources(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The (id, schema) pairs that record schemas reference."""
        return [(COMMON_ID, self.common), (ENVELOPE_ID, self.envelope)]


def _code_table(doc: dict[str, Any]) -> CodeTable:
    rows = doc["codes"]
    return CodeTable(
        id=doc["id"],
        title=doc["title"],
        description=doc["description"],
        labels=MappingProxyType({r["code"]: r["label"] for r in rows}),
        labels_en=MappingProxyType({r["code"]: r["label_en"] for r in rows}),
    )


@cache
def load_schema_set() -> SchemaSet:
    """Load the standard interface v1 from the package data (once per process)."""
    catalogue = _read_json("catalogue.json")
    tables = {}
    for entry in sorted(_PACKAGE.joinpath("codes").iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            table = _code_table(json.loads(entry.read_text(encoding="utf-8")))
            tables[table.id] = table
    schemas: dict[str, Mapping[str, Any]] = {}
    types: dict[str, RecordTypeInfo] = {}
    for name, entry in catalogue["types"].items():
        schema = _read_json("v1", f"{name}.schema.json")
        schemas[name] = schema
        types[name] = RecordTypeInfo(
            name=name,
            title=schema["title"],
            description=schema["description"],
            sharing=entry["sharing"],
            event_times=tuple(entry["event_times"]),
            time_order=tuple((a, b) for a, b in entry["time_order"]),
        )
    return SchemaSet(
        version=catalogue["version"],
        schemas=MappingProxyType(schemas),
        common=_read_json("v1", "common.schema.json"),
        envelope=_read_json("v1", "envelope.schema.json"),
        code_tables=MappingProxyType(tables),
        types=MappingProxyType(types),
    )
