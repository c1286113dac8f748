"""Record validation in two stages, compiled once per schema set.

The schema stage first asks a compiled validator (jsonschema-rs) for a verdict; only when
it says *invalid* does jsonschema walk the record for the full, precise error list. Both
agree on every record (a property test holds them to it). Semantic checks
(``schemas.semantic``) then run on every record, so that all errors come back together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import jsonschema_rs

if TYPE_CHECKING:
    import jsonschema

from schemas.issues import Issue, issue, pointer
from schemas.registry import SchemaSet, load_schema_set
from schemas.semantic import Clock, IdentifierPolicy, RecordChecks, system_clock

__all__ = ["Validator", "Verdict"]

_KEYWORD_CODES = {
    "type": "type",
    "pattern": "pattern",
    "enum": "enum",
    "const": "enum",
    "format": "format",
    "minLength": "length",
    "maxLength": "length",
    "minItems": "items_count",
    "maxItems": "items_count",
    "uniqueItems": "unique",
    "minimum": "range",
    "maximum": "range",
    "exclusiveMinimum": "range",
    "exclusiveMaximum": "range",
}

# how a bound of a length, a count or a number is said: ``at least 1`` / ``至少 1``
_BOUNDS = {
    "minLength": ("at least {}", "至少 {} "), "maxLength": ("at most {}", "至多 {} "),
    "minItems": ("at least {}", "至少 {} "), "maxItems": ("at most {}", "至多 {} "),
    "minimum": ("at least {}", "不小于 {}"), "maximum": ("at most {}", "不大于 {}"),
    "exclusiveMinimum": ("more than {}", "大于 {}"), "exclusiveMaximum": ("less than {}", "小于 {}"),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of validating one record: errors make it invalid, warnings do not."""

    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether the record is valid."""
        return not self.errors


_VALID = Verdict()


class _TypeValidator:
    """Both schema stages and the semantic checks of one record type."""

    def __init__(self, name: str, schemas: SchemaSet, rs_registry: jsonschema_rs.Registry) -> None:
        schema = self.schema = schemas.schema(name)
        self.schemas = schemas
        self.fast = jsonschema_rs.Draft202012Validator(dict(schema), registry=rs_registry, validate_formats=True)
        self.semantic = RecordChecks(schemas.info(name), schema, schemas.common)
        self.top_level = frozenset(schemas.envelope["properties"]) | frozenset(schema["properties"])

    @cached_property
    def full(self) -> Any:
        """The stage that names every error, made when a record of the type first fails the fast one
        (jsonschema is imported only then: a run of valid records never loads it)."""
        import jsonschema  # noqa: PLC0415 - deferred on purpose
        import referencing  # noqa: PLC0415

        registry: Any = referencing.Registry().with_resources(
            (uri, referencing.Resource.from_contents(doc)) for uri, doc in self.schemas.shared_resources())
        return jsonschema.Draft202012Validator(self.schema, registry=registry,
                                               format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)

    def schema_issues(self, record: Mapping[str, Any]) -> list[Issue]:
        found: dict[tuple[str, str], Issue] = {}
        for error in self.full.iter_errors(record):
            for item in self._translate(error):
                found.setdefault((item.path, item.code), item)
        return sorted(found.values(), key=lambda i: (i.path, i.code))

    def _translate(self, error: jsonschema.ValidationError) -> Iterator[Issue]:
        at = tuple(error.absolute_path)
        keyword, instance = error.validator, error.instance
        if keyword == "required":
            for name in error.validator_value:
                if isinstance(instance, dict) and name not in instance:
                    yield issue(pointer((*at, name)), "required")
        elif keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
            allowed = self.top_level if not at else frozenset(error.schema.get("properties", ()))
            for name in instance:
                if name not in allowed:
                    yield issue(pointer((*at, name)), "unknown_field")
        elif keyword in _KEYWORD_CODES:
            code = _KEYWORD_CODES[keyword]
            bound, bound_zh = _BOUNDS.get(keyword, ("{}", "{}"))
            limit = error.validator_value
            yield issue(pointer(at), code, expected=_expected(limit), value=_show(instance),
                        bound=bound.format(limit), bound_zh=bound_zh.format(limit))
        else:
            yield issue(pointer(at), "invalid")


def _expected(value: Any) -> str:
    return "/".join(value) if isinstance(value, list) else str(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Validator:
    """Validates standard records of every type; build once, use for many records."""

    def __init__(self, schemas: SchemaSet | None = None, *, identifiers: IdentifierPolicy = "strict",
                 clock: Clock = system_clock, extra_regions: Mapping[str, str] | None = None) -> None:
        self.schemas = schemas or load_schema_set()
        self.identifiers: IdentifierPolicy = identifiers
        self.extra_regions = frozenset(extra_regions or ())  # codes admitted beyond GB/T 2260
        self._clock = clock
        shared = self.schemas.shared_resources()
        rs_registry = jsonschema_rs.Registry([(uri, dict(doc)) for uri, doc in shared])
        self._types = {name: _TypeValidator(name, self.schemas, rs_registry)
                       for name in self.schemas.record_types}

    def validate(self, record: Any, *, identifiers: IdentifierPolicy | None = None) -> Verdict:
        """Validate one record and return every error and warning it has."""
        if not isinstance(record, dict):
            return Verdict((issue("", "not_object"),))
        record_type = record.get("record_type")
        checker = self._types.get(record_type) if isinstance(record_type, str) else None
        if checker is None:
            if "record_type" not in record:
                return Verdict((issue("/record_type", "required"),))
            return Verdict((issue("/record_type", "unknown_type", value=_show(record_type)),))
        schema_ok = checker.fast.is_valid(record)
        errors, warnings = checker.semantic.run(
            record, identifiers=identifiers or self.identifiers, now=self._clock(), extra_regions=self.extra_regions
        )
        if schema_ok:
            return Verdict(tuple(errors), tuple(warnings)) if errors or warnings else _VALID
        schema_errors = checker.schema_issues(record)
        flagged = {i.path for i in schema_errors}
        errors = schema_errors + [e for e in errors if e.path not in flagged]
        return Verdict(tuple(errors), tuple(w for w in warnings if w.path not in flagged))

    def is_schema_valid(self, record: Mapping[str, Any], *, stage: str = "fast") -> bool:
        """The verdict of one schema stage alone (``fast`` or ``full``), for tests and benchmarks."""
        checker = self._types[record["record_type"]]
        return bool(checker.fast.is_valid(record) if stage == "fast" else checker.full.is_valid(record))
