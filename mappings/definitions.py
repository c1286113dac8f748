"""The mapping language as data: a TOML file read strictly into frozen pydantic models.

An unknown key is an error that names the key and its line; see docs/mapping.md.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mappings.exceptions import MappingDefinitionError

__all__ = [
    "FORMAT_KEYS",
    "Condition",
    "Envelope",
    "Example",
    "MappingFile",
    "MappingHeader",
    "RegionName",
    "Rule",
    "SourceOptions",
    "key_line",
    "load_definition",
]

Conversion = Literal["string", "int", "number", "decimal", "bool", "datetime", "date", "operation"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Condition(_Strict):
    """When a rule applies: a source value equals, is among, matches or is present."""

    path: str
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    matches: str | None = None
    present: bool | None = None


class RegionName(_Strict):
    """A region's name to its GB/T 2260 code, within the province or city another field names
    (``within``, a source path) or a fixed one (``within_code``)."""

    within: str | None = None
    within_code: str | None = Field(default=None, pattern=r"^\d{6}$")


class Rule(_Strict):
    """How one target value is made: a source, then the transforms in their documented order."""

    from_: str | None = Field(default=None, alias="from")
    each: str | None = None
    fields: dict[str, str | Rule | list[Rule]] | None = None
    const: Any = None
    zip: dict[str, str] | None = None
    parts: list[Rule] | None = None
    first: list[Rule] | None = None
    when: Condition | None = None
    trim: bool = True
    halfwidth: bool = False
    split: str | list[str] | None = None
    index: int | None = None
    lookup: str | None = None
    invert: bool = False
    code_of: str | None = None
    label_of: str | None = None
    region_name: RegionName | None = None
    as_: Conversion | None = Field(default=None, alias="as")
    epoch: Literal["s", "ms", "excel"] | None = None
    scale: str | None = None
    places: int | None = Field(default=None, ge=0, le=12)
    format: str | None = None
    join: str | None = None
    default: Any = None

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        given = [k for k in ("from_", "each", "const", "zip", "parts", "first") if k in self.model_fields_set]
        if len(given) != 1:
            names = ", ".join(k.rstrip("_") for k in given) or "none"
            raise ValueError(f"a rule needs exactly one of from, each, const, zip, parts, first (given: {names})")
        if self.fields is not None and self.each is None:
            raise ValueError("fields needs each (the repeated elements or items to map)")
        if self.epoch is not None and self.as_ not in ("datetime", "date"):
            raise ValueError('epoch needs as = "datetime" or "date"')
        if self.parts is not None and self.join is None:
            raise ValueError("parts needs join (the separator between the parts)")
        return self


class MappingHeader(_Strict):
    """What the mapping is: its name, the standard record type, the source format."""

    name: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    title: str = ""
    description: str = ""
    record_type: str
    format: Literal["json", "xml", "csv", "xlsx"]
    reversible: bool = False
    timezone: str = "+08:00"


class Envelope(_Strict):
    """The check a page's envelope must pass (``code == 0``), else the whole page is refused."""

    path: str
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    message: str | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Envelope:
        if (self.equals is None) == (self.in_ is None):
            raise ValueError("an envelope check needs exactly one of equals, in")
        return self


class SourceOptions(_Strict):
    """Where a format's records are and how to read them; ``FORMAT_KEYS`` says which apply where."""

    record: str | None = None
    envelope: Envelope | None = None
    namespaces: dict[str, str] = Field(default_factory=dict)
    root: str | None = None
    encodings: list[str] = Field(default_factory=lambda: ["utf-8", "gb18030"])
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    sheet: str | int = 1
    skip_rows: int = Field(default=0, ge=0, le=1000)
    header_rows: int = Field(default=1, ge=1, le=10)
    header_join: str = Field(default="/", min_length=1)


FORMAT_KEYS: dict[str, frozenset[str]] = {
    "json": frozenset({"record", "envelope"}),
    "xml": frozenset({"record", "namespaces", "root"}),
    "csv": frozenset({"encodings", "delimiter", "skip_rows", "header_rows", "header_join"}),
    "xlsx": frozenset({"sheet", "skip_rows", "header_rows", "header_join"}),
}


class Example(_Strict):
    """A source record and the standard record it must map to (or the error codes it must give)."""

    name: str
    source: dict[str, Any] | str
    expect: dict[str, Any] | None = None
    errors: list[str] | None = None


FieldRules = dict[str, str | Rule | list[Rule]]


class MappingFile(_Strict):
    """A whole mapping file."""

    mapping: MappingHeader
    source: SourceOptions = Field(default_factory=SourceOptions)
    tables: dict[str, dict[str, str]] = Field(default_factory=dict)
    fields: FieldRules
    reverse: FieldRules | None = None
    example: list[Example] = Field(default_factory=list)


def _shape(part: Any) -> bool:
    """Whether a pydantic error location part names a shape tried (``Rule``, ``list[Rule]``), not a key."""
    return isinstance(part, str) and (part in ("str", "Rule") or "[" in part)


def key_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the TOML key at ``loc`` (a pydantic error location), found in order: a
    name followed by an index is the index-th ``[[name]]`` table (``("connector", 2, "kind")`` is
    the ``kind`` of the third connector, searched within that table alone)."""
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    start, end, found = 0, len(lines), None
    parts = [p for p in loc if not _shape(p)]
    for number, part in enumerate(parts):
        if not isinstance(part, str):
            continue
        following = parts[number + 1] if number + 1 < len(parts) else None
        if isinstance(following, int):
            table = _nth_table(lines, part, following, start, end)
            if table is not None:
                start, end, found = table[0], table[1], table[0]
                continue
        key = re.escape(part.rstrip("_") if part in ("from_", "as_", "in_") else part)
        pattern = re.compile(rf"""(^|[\s{{,.\[])("{key}"|'{key}'|{key})\s*(=|\]|\.)""")
        for row in range(start, end):
            if pattern.search(lines[row]):
                found = start = row
                break
    return None if found is None else found + 1


def _nth_table(lines: list[str], name: str, index: int, start: int, end: int) -> tuple[int, int] | None:
    """Where the ``index``-th ``[[name]]`` table within ``start`` … ``end`` begins, and where the
    next table header after it is."""
    header = re.compile(rf"""^\s*\[\[\s*("{re.escape(name)}"|{re.escape(name)})\s*\]\]""")
    seen = -1
    for row in range(start, end):
        if header.match(lines[row]):
            seen += 1
            if seen == index:
                following = next((r for r in range(row + 1, end) if re.match(r"^\s*\[", lines[r])), end)
                return row, following
    return None


def _describe(error: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    loc = tuple(error["loc"])
    path = ".".join(str(p).rstrip("_") for p in loc if not _shape(p))
    if error["type"] == "extra_forbidden":
        return f"未知的键 / unknown key {path!r}", loc
    if error["type"] == "missing":
        return f"缺少键 / missing key {path!r}", loc
    return f"{path}: {error['msg']}", loc


def load_definition(text: str, *, source: str = "") -> MappingFile:
    """Parse and check a mapping file's text; raises ``MappingDefinitionError`` naming key and line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingDefinitionError(f"TOML 语法错误 / TOML syntax error: {exc}", source=source) from exc
    try:
        definition = MappingFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # a union of rule shapes reports each alternative: keep the most telling one
        shape_only = {"string_type", "list_type", "model_type", "dict_type", "model_attributes_type"}
        errors.sort(key=lambda e: (e["type"] != "extra_forbidden", e["type"] in shape_only, -len(e["loc"])))
        message, loc = _describe(dict(errors[0]))
        raise MappingDefinitionError(message, source=source, line=key_line(text, loc)) from exc
    fmt = definition.mapping.format
    for key in sorted(definition.source.model_fields_set - FORMAT_KEYS[fmt]):
        where = sorted(f for f, keys in FORMAT_KEYS.items() if key in keys)
        raise MappingDefinitionError(f"[source] {key} 不适用于 {fmt} 格式 / [source] {key} does not apply to format "
                                     f"{fmt} (it is for {', '.join(where)})", source=source,
                                     line=key_line(text, ("source", key)))
    return definition
