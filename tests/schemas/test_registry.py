"""The schema files, code tables and catalogue of the standard interface v1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from schemas import load_schema_set
from schemas.exceptions import UnknownRecordTypeError

STANDARD_TYPES = ["matter", "subject", "inspection_plan", "joint_task", "inspection", "penalty", "enforcement_measure",
              "license", "clue", "risk_warning", "credit_evaluation", "credit_sanction", "case_transfer",
              "enforcement_officer", "feedback"]
SCHEMAS = load_schema_set()
ALL_DOCS = {**SCHEMAS.schemas, "envelope": SCHEMAS.envelope, "common": SCHEMAS.common}
HAN = re.compile(r"[\u4e00-\u9fff]")


def _properties(node: Any, at: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{at}/{name}", sub
        for key, sub in node.items():
            if key in ("properties", "$defs"):
                for name, child in sub.items():
                    yield from _properties(child, f"{at}/{name}")
            elif key == "items":
                yield from _properties(sub, at)


def test_the_catalogue_has_the_fifteen_types_of_the_spec() -> None:
    """The record types are exactly those of the standard interface, in its order."""
    assert list(SCHEMAS.record_types) == STANDARD_TYPES


@pytest.mark.parametrize("name", list(ALL_DOCS))
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    """Each schema file is itself valid against the 2020-12 meta-schema."""
    doc = ALL_DOCS[name]
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("name", list(ALL_DOCS))
def test_every_property_has_a_chinese_title_and_a_description(name: str) -> None:
    """Every property carries a Chinese title and a description."""
    for path, prop in _properties(ALL_DOCS[name]):
        assert HAN.search(prop.get("title", "")), f"{name}{path} has no Chinese title"
        assert prop.get("description"), f"{name}{path} has no description"


def _enums(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "enum" in node:
            yield node
        for sub in node.values():
            yield from _enums(sub)
    elif isinstance(node, list):
        for sub in node:
            yield from _enums(sub)


def test_every_enum_is_a_code_table_and_matches_it() -> None:
    """Each enum names its code table and lists exactly that table's codes."""
    for name, doc in ALL_DOCS.items():
        for enum in _enums(doc):
            table = enum.get("x-code-table")
            assert table in SCHEMAS.code_tables, f"{name}: enum without a known code table"
            assert list(enum["enum"]) == list(SCHEMAS.code_tables[table].codes), f"{name}: {table} differs"


def test_every_code_table_is_used() -> None:
    """No code table lies unused beside the schemas."""
    used = {e["x-code-table"] for doc in ALL_DOCS.values() for e in _enums(doc)}
    assert used == set(SCHEMAS.code_tables)


def test_the_code_tables_hold_the_spec_codes() -> None:
    """Penalty types 01–14, result codes 01–09, the three sharing classes and the three grades."""
    tables = SCHEMAS.code_tables
    assert tables["penalty_type"].codes == tuple(f"{n:02d}" for n in range(1, 15))
    assert tables["inspection_result"].codes == tuple(f"{n:02d}" for n in range(1, 10))
    assert tables["sharing"].codes == ("unconditional", "conditional", "none")
    assert tables["grade"].codes == ("general", "important", "core")
    assert tables["inspection_result"].code_for_label("发现问题已责令改正") == "02"


def test_default_sharing_classes_are_sharing_codes() -> None:
    """Each type's default sharing class is a code of the sharing table."""
    for info in SCHEMAS.types.values():
        assert info.sharing in SCHEMAS.code_tables["sharing"].codes


def test_an_unknown_type_is_a_configuration_error() -> None:
    """Asking for a type the interface does not define names it."""
    with pytest.raises(UnknownRecordTypeError, match="nonesuch"):
        SCHEMAS.schema("nonesuch")
