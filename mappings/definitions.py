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
    "Condition",
    "Example",
    "MappingFile",
    "MappingHeader",
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


class Rule(_Strict):
    """How one target value is made: a source, then the transforms in their documented order."""

    from_: str | None = Field(default=None, alias="from")
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
    as_: Conversion | None = Field(default=None, alias="as")
    scale: str | None = None
    places: int | None = Field(default=None, ge=0, le=12)
    format: str | None = None
    join: str | None = None
    default: Any = None

    @model_validator(mode="after")
    def _one_source(self) -> Rule:
        given = [k for k in ("from_", "const", "zip", "parts", "first") if k in self.model_fields_set]
        if len(given) != 1:
            names = ", ".join(k.rstrip("_") for k in given) or "none"
            raise ValueError(f"a rule needs exactly one of from, const, zip, parts, first (given: {names})")
        if self.parts is not None and self.join is None:
            raise ValueError("parts needs join (the separator between the parts)")
        return self


class MappingHeader(_Strict):
    """What the mapping is: its name, the standard record type, the source format."""

    name: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
    title: str = ""
    description: str = ""
    record_type: str
    format: Literal["json", "xml", "csv"]
    reversible: bool = False
    timezone: str = "+08:00"


class SourceOptions(_Strict):
    """Format details: XML namespaces and element names, CSV encodings and delimiter."""

    namespaces: dict[str, str] = Field(default_factory=dict)
    root: str | None = None
    record: str | None = None
    encodings: list[str] = Field(default_factory=lambda: ["utf-8", "gb18030"])
    delimiter: str = Field(default=",", min_length=1, max_length=1)


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


def key_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the TOML key at ``loc`` (a pydantic error location), found in order."""
    lines = text.splitlines()
    start = 0
    found = None
    for part in (p for p in loc if isinstance(p, str) and p not in ("str", "Rule", "list[Rule]")):
        key = re.escape(part.rstrip("_") if part in ("from_", "as_", "in_") else part)
        pattern = re.compile(rf"""(^|[\s{{,.\[])("{key}"|'{key}'|{key})\s*(=|\]|\.)""")
        for number in range(start, len(lines)):
            if pattern.search(lines[number].split("#", 1)[0]):
                found = start = number
                break
    return None if found is None else found + 1


def _describe(error: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    loc = tuple(error["loc"])
    path = ".".join(str(p).rstrip("_") for p in loc if p not in ("str", "Rule", "list[Rule]"))
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
        raise MappingDefinitionError(f"TOML 语法错误 / TOML syntax error: {exc}", source=source) from None
    try:
        return MappingFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # a union of rule shapes reports each alternative: keep the most telling one
        shape_only = {"string_type", "list_type", "model_type", "dict_type", "model_attributes_type"}
        errors.sort(key=lambda e: (e["type"] != "extra_forbidden", e["type"] in shape_only, -len(e["loc"])))
        message, loc = _describe(dict(errors[0]))
        raise MappingDefinitionError(message, source=source, line=key_line(text, loc)) from None
