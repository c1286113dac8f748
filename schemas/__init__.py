"""The standard administrative-supervision data interface v1: schemas, code tables and validation.

A pure core: values in, values out; no network, no files beyond the package's own data.
"""

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from schemas.exceptions import SupexError, UnknownRecordTypeError
from schemas.issues import Issue
from schemas.registry import CodeTable, RecordTypeInfo, SchemaSet, load_schema_set
from schemas.semantic import IdentifierPolicy
from schemas.validation import Validator, Verdict

__all__ = [
    "CodeTable",
    "IdentifierPolicy",
    "Issue",
    "RecordTypeInfo",
    "SchemaSet",
    "SupexError",
    "UnknownRecordTypeError",
    "Validator",
    "Verdict",
    "example_record",
    "load_schema_set",
]


@cache
def _examples() -> dict[str, dict[str, Any]]:
    data = resources.files("schemas").joinpath("examples.json").read_text(encoding="utf-8")
    examples: dict[str, dict[str, Any]] = json.loads(data)
    return examples


def example_record(record_type: str) -> dict[str, Any]:
    """A valid example record of ``record_type`` (a fresh copy, free to change)."""
    try:
        return copy.deepcopy(_examples()[record_type])
    except KeyError:
        raise UnknownRecordTypeError(f"未知的记录类型 / unknown record type {record_type!r}") from None
