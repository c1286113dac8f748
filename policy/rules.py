"""Sharing rules: the model read from the configuration or the admin API, checked
against the schemas, and compiled into a matcher and a shaper that the decision runs per record.

Field paths in ``fields`` and ``mask`` are relative to the record's ``data``; a path through an
array applies to each of its elements (``inspectors.name``); a path naming an object shares the
whole object. Without ``fields``, every field of ``data`` is shared (masks still apply).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policy.exceptions import PolicyDefinitionError
from policy.masks import Mask, compile_mask
from schemas import load_schema_set
from schemas.registry import COMMON_ID

__all__ = ["CompiledRule", "Conditions", "SharingRule", "compile_rule", "data_paths", "known_record_types",
           "parse_duration"]

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LOCAL = dt.timezone(dt.timedelta(hours=8))  # validity dates are dates of the province's calendar
Tree = dict[str, "Tree | None"]  # a path tree: None marks a leaf (the whole value below it)


def parse_duration(text: str) -> int:
    """Seconds from ``90s``, ``30m``, ``24h`` or ``7d``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 24h, 7d)")
    return int(match[1]) * _SECONDS[match[2]]


def _one_or_many(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class Conditions(BaseModel):
    """``when``: conditions on the record; each may name one value or a list of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region_prefix: str | list[str] | None = None
    matter_prefix: str | list[str] | None = None
    subject_kind: str | list[str] | None = None
    grade: str | list[str] | None = None
    source: str | list[str] | None = None  # the producing connector (a grant is of one provider's data)

    def specificity(self) -> int:
        """More conditions, and longer prefixes, make a rule more specific."""
        score = 0
        for name in ("region_prefix", "matter_prefix", "subject_kind", "grade", "source"):
            values = _one_or_many(getattr(self, name))
            if values:
                score += 100 + min(len(v) for v in values)
        return score


class SharingRule(BaseModel):
    """A ``[[sharing]]`` rule: who receives which records, for what purpose, which fields, masked how."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,80}$")
    record_types: list[str] = Field(min_length=1)
    consumers: list[str] = Field(min_length=1)
    purpose: str = Field(min_length=1, max_length=200)
    when: Conditions = Field(default_factory=Conditions)
    fields: list[str] | None = None
    mask: dict[str, str] = Field(default_factory=dict)
    deliver_within: str | None = None
    max_reads_per_day: int | None = Field(default=None, ge=1)
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    enabled: bool = True
    # where the rule came from, when not written by an administrator: ``sharing-request:<id>`` for
    # a request granted; such a rule also routes the records it applies to to its consumers
    origin: str | None = Field(default=None, max_length=120)

    @field_validator("deliver_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("record_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return known_record_types(value)


def known_record_types(names: list[str]) -> list[str]:
    """``names`` if every one is a record type of the standard interface; else a ``ValueError``."""
    known = load_schema_set().record_types
    unknown = [t for t in names if t not in known]
    if unknown:
        raise ValueError(f"unknown record types {unknown} (known: {', '.join(known)})")
    return names


@lru_cache(maxsize=64)
def _data_fields(record_type: str) -> dict[str, Mapping[str, Any]]:
    """Every dotted path below ``data`` of a record type (arrays looked through), with its schema."""
    schema_set = load_schema_set()
    common = schema_set.common["$defs"]
    fields: dict[str, Mapping[str, Any]] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        ref = node.get("$ref", "")
        if ref.startswith(COMMON_ID):
            node = common[ref.rsplit("/", 1)[-1]]
        if node.get("type") == "array" and isinstance(node.get("items"), dict):
            walk(node["items"], prefix)
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            fields[path] = sub
            walk(sub, path)

    walk(schema_set.schemas[record_type]["properties"]["data"], "")
    return fields


def data_paths(record_type: str) -> frozenset[str]:
    """Every dotted path below ``data`` of a record type, arrays looked through."""
    return frozenset(_data_fields(record_type))


def default_masks(record_type: str) -> dict[str, str]:
    """The masks every rule applies unless it says otherwise: the schema's personal data
    (``x-mask``), such as a subject's representative's name and certificate number."""
    return {path: node["x-mask"] for path, node in _data_fields(record_type).items() if "x-mask" in node}


def path_tree(paths: Iterable[str]) -> Tree:
    """Dotted paths as a tree of their parts, ``None`` at each path's end."""
    tree: Tree = {}
    for path in paths:
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if child is None:  # a parent is already shared whole
                break
            node = child
        else:
            node[parts[-1]] = None
    return tree


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to run: its conditions as tuples, its fields and masks as path trees."""

    rule: SharingRule
    region_prefixes: tuple[str, ...]
    matter_prefixes: tuple[str, ...]
    subject_kinds: tuple[str, ...]
    grades: tuple[str, ...]
    sources: tuple[str, ...]
    fields: Tree | None
    masks: dict[str, Mask]
    mask_tree: Tree
    specificity: int
    deliver_within: int | None
    always: bool  # enabled, without conditions or a validity window: applies to every record

    @property
    def id(self) -> str:
        """The rule's id."""
        return self.rule.id

    @property
    def reason(self) -> str:
        """Why a record is shared under this rule, as decisions say it."""
        return f"共享规则 {self.rule.id} / sharing rule {self.rule.id}"

    def unmet(self, record: Mapping[str, Any], today: dt.date) -> str | None:
        """Why this rule does not apply to ``record`` today, or ``None`` when it does."""
        if self.always:
            return None
        rule = self.rule
        if not rule.enabled:
            return "规则已停用 / the rule is disabled"
        if rule.valid_from and today < rule.valid_from:
            return f"规则自 {rule.valid_from} 起生效 / the rule is valid from {rule.valid_from}"
        if rule.valid_until and today > rule.valid_until:
            return f"规则已于 {rule.valid_until} 到期 / the rule expired on {rule.valid_until}"
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        assert isinstance(data, dict)
        subject = data.get("subject") if isinstance(data.get("subject"), dict) else {}
        assert isinstance(subject, dict)
        checks = (
            ("region_prefix", self.region_prefixes, str(record.get("region_code") or ""), True),
            ("matter_prefix", self.matter_prefixes, str(data.get("matter_code") or ""), True),
            ("subject_kind", self.subject_kinds, str(subject.get("kind") or ""), False),
            ("grade", self.grades, str(record.get("grade") or "general"), False),
            ("source", self.sources, _producer(record), False),
        )
        for name, wanted, actual, prefix in checks:
            if wanted and not any(actual.startswith(w) if prefix else actual == w for w in wanted):
                return f"条件 {name} 不符 / condition {name} {list(wanted)} does not match {actual!r}"
        return None


def _producer(record: Mapping[str, Any]) -> str:
    source = record.get("source")
    return str(source.get("connector") or "") if isinstance(source, dict) else ""


def compile_rule(rule: SharingRule, consumers: Iterable[str]) -> CompiledRule:
    """Check ``rule`` against the known consumers and the schemas, and compile it."""
    known = set(consumers)
    unknown = [c for c in rule.consumers if c not in known]
    if unknown:
        raise PolicyDefinitionError(f"共享规则 {rule.id} 指向未知的连接器 / sharing rule {rule.id!r} names unknown "
                                    f"consumers {unknown}")
    unknown = [c for c in _one_or_many(rule.when.source) if c not in known]
    if unknown:
        raise PolicyDefinitionError(f"共享规则 {rule.id} 的来源是未知的连接器 / sharing rule {rule.id!r}: when.source "
                                    f"names unknown connectors {unknown}")
    paths = frozenset().union(*(data_paths(t) for t in rule.record_types))
    for path in [*(rule.fields or ()), *rule.mask]:
        if path not in paths:
            raise PolicyDefinitionError(f"共享规则 {rule.id} 的字段路径 {path} 不存在 / sharing rule {rule.id!r}: no "
                                        f"field {path!r} under data of {', '.join(rule.record_types)}")
    defaults = {path: spec for t in rule.record_types for path, spec in default_masks(t).items()}
    specs = rule.mask | {path: spec for path, spec in defaults.items() if path not in rule.mask}
    try:
        masks = {path: compile_mask(spec) for path, spec in specs.items() if spec != "clear"}
    except PolicyDefinitionError as exc:
        raise PolicyDefinitionError(f"共享规则 {rule.id} / sharing rule {rule.id!r}: {exc}") from None
    when = rule.when
    specificity = when.specificity()
    return CompiledRule(
        rule=rule, region_prefixes=_one_or_many(when.region_prefix), matter_prefixes=_one_or_many(when.matter_prefix),
        subject_kinds=_one_or_many(when.subject_kind), grades=_one_or_many(when.grade),
        sources=_one_or_many(when.source),
        fields=path_tree(rule.fields) if rule.fields is not None else None, masks=masks,
        mask_tree=path_tree(masks),
        specificity=specificity, deliver_within=parse_duration(rule.deliver_within)
        if rule.deliver_within else None,
        always=rule.enabled and not rule.valid_from and not rule.valid_until and specificity == 0,
    )
