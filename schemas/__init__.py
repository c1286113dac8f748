"""The standard administrative-supervision data interface v1: schemas, code tables and validation.

A pure core: values in, values out; no network, no files beyond the package's own data.
"""

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
    "load_schema_set",
]
