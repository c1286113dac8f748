"""Routing and sharing decisions as pure functions of record, configuration and lookups.

``Policy.routes`` says which consumers a record goes to and why; ``Policy.decide`` says whether a
routed consumer may have it, under which rule; ``Policy.share`` builds exactly what it receives.
The inbox, push delivery, ``supex policy explain`` and the admin API all go through these three.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from policy.exceptions import PolicyDefinitionError
from policy.masks import compile_mask
from policy.procedure import Terms
from policy.rules import LOCAL, CompiledRule, SharingRule, Tree, compile_rule, default_masks, path_tree
from schemas import load_schema_set

__all__ = ["ENVELOPE", "Decision", "Party", "Policy", "Route", "Shared", "local_today"]

# always shared with the data a rule lets through, with the gateway's own fields
ENVELOPE = ("record_type", "record_id", "op", "version", "occurred_at", "region_code", "sharing", "grade", "source",
            "received_at", "seq", "corrects")
Catalogue = Callable[[str], Collection[str]]  # matter code -> department codes of its lead and co-departments
Producer = Callable[[Mapping[str, Any]], "str | None"]  # a feedback's ``refers_to`` -> the producing connector


class Party(Protocol):
    """What routing needs to know of a connector."""

    @property
    def id(self) -> str: ...
    @property
    def department_code(self) -> str: ...
    @property
    def region_prefix(self) -> str: ...
    @property
    def consumes(self) -> list[str]: ...
    @property
    def system_of_record(self) -> bool: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def receive_own(self) -> bool: ...


def local_today(now: dt.datetime) -> dt.date:
    """The date in the province's calendar (UTC+8), against which rules' validity is read."""
    return now.astimezone(LOCAL).date()


class Route(NamedTuple):
    """A consumer a record goes to: ``subscription``, ``target``, ``catalogue``, ``reply``, ``grant``
    (a sharing request granted) or ``correction`` (a corrected record to those given it before)."""

    consumer: str
    reason: str


class Decision(NamedTuple):
    """Whether ``consumer`` may have a record, why, and under which rule. (Named tuples: one is made
    for every record and consumer, and they cost a fraction of a frozen dataclass to build.)"""

    consumer: str
    allowed: bool
    reason: str
    rule: str | None = None
    purpose: str | None = None
    deliver_within: int | None = None
    considered: tuple[tuple[str, str], ...] = ()  # every candidate rule and what became of it
    compiled: CompiledRule | None = None


class Shared(NamedTuple):
    """The record as a consumer receives it, and which ``data`` paths were shared, masked, left out."""

    record: dict[str, Any]
    fields: tuple[str, ...]
    masked: tuple[str, ...]
    omitted: tuple[str, ...]


class Policy:
    """The connectors and sharing rules in force, compiled once; decisions are then pure lookups."""

    def __init__(self, parties: Iterable[Party], rules: Iterable[SharingRule], terms: Terms | None = None) -> None:
        self.parties = {p.id: p for p in parties}
        self.terms = terms or Terms()
        self.rules = [compile_rule(rule, self.parties) for rule in rules]
        ids = [r.id for r in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise PolicyDefinitionError(f"共享规则编号重复 / duplicate sharing rule ids: {duplicates}")
        self._candidates: dict[tuple[str, str], list[CompiledRule]] = {}
        for rule in sorted(self.rules, key=lambda r: (-r.specificity, r.id)):
            for consumer in rule.rule.consumers:
                for record_type in rule.rule.record_types:
                    self._candidates.setdefault((consumer, record_type), []).append(rule)
        self._by_department: dict[str, list[str]] = {}
        self._subscribers: dict[str, list[tuple[str, str]]] = {}  # record type -> (consumer, region prefix)
        self._order = {party_id: n for n, party_id in enumerate(self.parties)}
        self._enabled = frozenset(p.id for p in self.parties.values() if p.enabled)
        self._not_own = frozenset(p.id for p in self.parties.values() if not p.receive_own)
        for party in self.parties.values():
            self._by_department.setdefault(party.department_code, []).append(party.id)
            if party.enabled:
                for record_type in party.consumes:
                    self._subscribers.setdefault(record_type, []).append((party.id, party.region_prefix))
        self._defaults = {name: info.sharing for name, info in load_schema_set().types.items()}
        self._grants = _grants(self.rules)
        self._receivable: dict[tuple[str, str], bool] = {}  # may_receive's answers: a policy never changes
        self._read_limits: dict[str, int] = {}
        for rule in self.rules:
            if rule.rule.enabled and rule.rule.max_reads_per_day:
                for consumer in rule.rule.consumers:
                    limit = self._read_limits.get(consumer, rule.rule.max_reads_per_day)
                    self._read_limits[consumer] = min(limit, rule.rule.max_reads_per_day)

    # ---- routing ------------------------------------------------------------------------------

    def routes(self, record: Mapping[str, Any], source: str, *, catalogue: Catalogue,
               producer: Producer, today: dt.date | None = None) -> list[Route]:
        """The consumers ``record`` from ``source`` goes to, each with the first reason that holds
        (grants are looked at only given ``today``, against which their validity is read)."""
        record_type = record.get("record_type")
        region = str(record.get("region_code") or "")
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        assert isinstance(data, dict)
        named = self._named(str(record_type), data, catalogue, producer)
        excluded = source if source in self._not_own else None  # a producer that asked not to get its own
        found = {party_id: "subscription" for party_id, prefix in self._subscribers.get(str(record_type), ())
                 if party_id != excluded and region.startswith(prefix)}
        if today is not None:
            for party_id in self._granted(record, str(record_type), source, today):
                named.setdefault(party_id, "grant")
        if not named:
            return [Route(party_id, reason) for party_id, reason in found.items()]
        for party_id, reason in named.items():
            party = self.parties.get(party_id)
            if party is not None and party.enabled and party_id != source:  # naming oneself is no route
                found[party_id] = reason
        return [Route(party_id, found[party_id]) for party_id in sorted(found, key=self._order.__getitem__)]

    def _named(self, record_type: str, data: Mapping[str, Any], catalogue: Catalogue,
               producer: Producer) -> dict[str, str]:
        """The consumers a record names, each with its route: the producer a feedback replies to,
        a warning's targets, the departments of a clue's or a warning's matter."""
        named: dict[str, str] = {}
        if record_type == "feedback" and isinstance(data.get("refers_to"), dict):
            to = producer(data["refers_to"])
            if to:
                named.setdefault(to, "reply")
        if record_type == "risk_warning":
            codes = data.get("target_department_codes")
            for code in codes if isinstance(codes, list) else ():
                for party_id in self._by_department.get(code if isinstance(code, str) else "", ()):
                    named.setdefault(party_id, "target")
        if record_type in ("clue", "risk_warning") and isinstance(data.get("matter_code"), str):
            for code in catalogue(data["matter_code"]):
                for party_id in self._by_department.get(code, ()):
                    named.setdefault(party_id, "catalogue")
        return named

    def _granted(self, record: Mapping[str, Any], record_type: str, source: str, today: dt.date) -> list[str]:
        """The consumers a granted request's rule routes ``record`` to today."""
        return [party_id for rule in self._grants.get(record_type, ()) if rule.unmet(record, today) is None
                for party_id in rule.rule.consumers if party_id != source and party_id in self._enabled]

    def explain(self, record: Mapping[str, Any], consumer: str, today: dt.date, *, catalogue: Catalogue,
                producer: Producer) -> dict[str, Any]:
        """For ``supex policy explain`` and the admin API: whether and why ``record`` reaches
        ``consumer``, the rules considered, and exactly what the consumer would receive."""
        source = (record.get("source") or {}).get("connector") if isinstance(record.get("source"), dict) else None
        party = self.parties.get(consumer)
        route = next((r for r in self.routes(record, str(source or ""), catalogue=catalogue, producer=producer,
                                             today=today)
                      if r.consumer == consumer), None)
        out: dict[str, Any] = {"consumer": consumer, "record_type": record.get("record_type"),
                               "record_id": record.get("record_id"), "routed": route is not None,
                               "route": route.reason if route else None}
        if route is None:
            out["reason"] = self._not_routed(record, consumer, party, source)
            out["allowed"] = False
            return out
        decision = self.decide(record, consumer, today)
        out.update(allowed=decision.allowed, reason=decision.reason, rule=decision.rule, purpose=decision.purpose,
                   deliver_within_seconds=decision.deliver_within,
                   considered=[{"rule": rule, "outcome": why} for rule, why in decision.considered])
        if decision.allowed:
            shared = self.share(record, decision)
            out.update(shared=shared.record, fields=list(shared.fields), masked=list(shared.masked),
                       omitted=list(shared.omitted))
        return out

    @staticmethod
    def _not_routed(record: Mapping[str, Any], consumer: str, party: Party | None, source: str | None) -> str:
        if party is None:
            return f"未知的连接器 / unknown connector {consumer!r}"
        if not party.enabled:
            return "连接器已停用 / the connector is disabled"
        if party.id == source and not party.receive_own:
            return "记录由该连接器自己报送，且其不接收自己的记录 / the connector produced this record itself and " \
                   "does not receive its own (receive_own = false)"
        record_type, region = record.get("record_type"), str(record.get("region_code") or "")
        if record_type not in party.consumes:
            return (f"未订阅 {record_type}，也未被记录指名 / does not consume {record_type} and is not named by the "
                    "record (targets, matter catalogue, feedback)")
        return (f"区划 {region} 不在其管辖范围 {party.region_prefix}… 内 / region {region} is outside its "
                f"jurisdiction {party.region_prefix}…")

    def may_receive(self, source: str, record_type: str) -> bool:
        """Whether a record of ``record_type`` from ``source`` could reach anyone by a route
        ``routes`` knows: a type whose records name their consumers, a subscriber to the type (in any
        region), or a rule granted for the type. ``False`` only where ``routes`` gives nobody for
        every record of the type; a correction may still go to whoever had the record before."""
        known = self._receivable.get((source, record_type))
        if known is None:
            excluded = source if source in self._not_own else None
            known = self._receivable[source, record_type] = record_type in _NAMING_TYPES or any(
                party_id != excluded for party_id, _ in self._subscribers.get(record_type, ())) or any(
                party_id != source and party_id in self._enabled
                for rule in self._grants.get(record_type, ()) for party_id in rule.rule.consumers)
        return known

    # ---- sharing ------------------------------------------------------------------------------

    def decide(self, record: Mapping[str, Any], consumer: str, today: dt.date) -> Decision:
        """May ``consumer`` have ``record`` today, and under which rule (the most specific that applies)."""
        party = self.parties.get(consumer)
        if party is None or not party.enabled:
            return Decision(consumer, False, "未知或已停用的连接器 / unknown or disabled consumer")
        record_type = str(record.get("record_type"))
        sharing = record.get("sharing") or self._defaults.get(record_type, "conditional")
        chosen: CompiledRule | None = None
        considered = []
        for rule in self._candidates.get((consumer, record_type), ()):
            why = rule.unmet(record, today)
            if why is None and chosen is None:
                chosen = rule
                considered.append((rule.id, "适用 / applies"))
            elif why is None:
                assert chosen is not None
                considered.append((rule.id, f"也适用，但 {chosen.id} 更具体 / applies too, but {chosen.id} is more "
                                            "specific"))
            else:
                considered.append((rule.id, why))
        notes = tuple(considered)
        if sharing == "none":
            if party.system_of_record:
                return Decision(consumer, True, "不予共享类记录报送记录系统 / none-class record to its system of "
                                "record (reporting duty)", considered=notes)
            return Decision(consumer, False, "不予共享：仅报送记录系统 / sharing class none: only systems of record "
                            "receive it", considered=notes)
        if chosen is None:
            if sharing == "unconditional":
                return Decision(consumer, True, "无条件共享 / unconditional sharing", considered=notes)
            why = "没有适用的共享规则 / no sharing rule applies" if notes else \
                "有条件共享且没有规则指向该连接器 / conditional sharing and no rule names this consumer"
            return Decision(consumer, False, why, considered=notes)
        return Decision(consumer, True, chosen.reason, rule=chosen.id,
                        purpose=chosen.rule.purpose, deliver_within=chosen.deliver_within, considered=notes,
                        compiled=chosen)

    def read_limit(self, consumer: str) -> int | None:
        """The smallest ``max_reads_per_day`` of the enabled rules naming ``consumer``, if any."""
        return self._read_limits.get(consumer)

    @staticmethod
    def share(record: Mapping[str, Any], decision: Decision) -> Shared:
        """What the consumer receives: the envelope, and ``data`` through the rule's fields and masks."""
        rule = decision.compiled
        if rule is None:  # shared without a rule: whole, but for the personal data masked by default
            masks, tree = _default_shaping(str(record.get("record_type")))
            if not masks or not isinstance(record.get("data"), dict):
                return Shared(dict(record), (), (), ())
            hidden: list[str] = []
            data = _mask(record["data"], tree, "", masks, hidden)
            return Shared({**record, "data": data}, (), tuple(dict.fromkeys(hidden)), ())
        fields: list[str] = []
        masked: list[str] = []
        omitted: list[str] = []
        data = record.get("data")
        if rule.fields is not None:
            data = _select(data, rule.fields, "", fields, omitted)
        if rule.masks:
            data = _mask(data, rule.mask_tree, "", rule.masks, masked)
        shared = {k: record[k] for k in ENVELOPE if k in record}
        shared["data"] = data
        return Shared(shared, tuple(dict.fromkeys(fields)), tuple(dict.fromkeys(masked)),
                      tuple(dict.fromkeys(omitted)))


# the record types whose records name consumers of their own (``Policy._named``)
_NAMING_TYPES = frozenset({"feedback", "risk_warning", "clue"})


def _grants(rules: Iterable[CompiledRule]) -> dict[str, list[CompiledRule]]:
    """The enabled rules granted by sharing requests, by record type: they route as well as allow."""
    grants: dict[str, list[CompiledRule]] = {}
    for rule in rules:
        if rule.rule.origin and rule.rule.enabled:
            for record_type in rule.rule.record_types:
                grants.setdefault(record_type, []).append(rule)
    return grants


@lru_cache(maxsize=64)
def _default_shaping(record_type: str) -> tuple[dict[str, Any], Tree]:
    """The masks a record type's personal data gets where no rule says otherwise, and their tree."""
    if record_type not in load_schema_set().record_types:
        return {}, {}
    masks = {path: compile_mask(spec) for path, spec in default_masks(record_type).items()}
    return masks, path_tree(masks)


def _select(value: Any, tree: Tree, path: str, fields: list[str], omitted: list[str]) -> Any:
    if isinstance(value, list):
        return [_select(v, tree, path, fields, omitted) for v in value]
    if not isinstance(value, dict):
        return None
    out = {}
    for key, item in value.items():
        here = f"{path}.{key}" if path else key
        if key not in tree:
            omitted.append(here)
            continue
        below = tree[key]
        if below is None:
            out[key] = item
            fields.append(here)
        else:
            out[key] = _select(item, below, here, fields, omitted)
    return out


def _mask(value: Any, tree: Tree, path: str, masks: Mapping[str, Any], masked: list[str]) -> Any:
    if isinstance(value, list):
        return [_mask(v, tree, path, masks, masked) for v in value]
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for key, below in tree.items():
        if key not in out or out[key] is None:
            continue
        here = f"{path}.{key}" if path else key
        if below is None:
            function = masks[here]
            item = out[key]
            out[key] = [function(v) for v in item] if isinstance(item, list) else function(item)
            masked.append(here)
        else:
            out[key] = _mask(out[key], below, here, masks, masked)
    return out
