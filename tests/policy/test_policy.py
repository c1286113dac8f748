"""Routing and sharing decisions as pure functions: rules, routes, and the policy matrix."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from gateway.config import ConnectorConfig
from policy import ENVELOPE, Policy, PolicyDefinitionError, SharingRule
from policy.decision import Route
from tests.conftest import VALID_RECORDS

TODAY = dt.date(2026, 11, 26)
SOURCE = "src"


def party(id_: str, region: str = "370000", code: str = "11370000FE1KM2U90Y", **more: Any) -> ConnectorConfig:
    """A connector for the tests; every one has its own department code."""
    return ConnectorConfig(id=id_, name=id_, department_code=code, region_code=region, **more)


def rule(**over: Any) -> SharingRule:
    """A rule giving the clue's id and reporter phone to ``ruled``."""
    body = {"id": "r", "record_types": ["clue"], "consumers": ["ruled"], "purpose": "线索核查",
            "fields": ["clue_id", "reporter.phone"], "mask": {"reporter.phone": "phone"}}
    return SharingRule.model_validate({**body, **over})


def no_catalogue(_code: str) -> list[str]:
    """An empty matter catalogue."""
    return []


def no_producer(_refers_to: Any) -> None:
    """No stored record to reply to."""


def clue(**over: Any) -> dict[str, Any]:
    """The valid clue, conditional, in 370102."""
    record = copy.deepcopy(VALID_RECORDS["clue"])
    record.update({"sharing": "conditional", "region_code": "370102", "source": {"connector": SOURCE}, **over})
    return record


# ---- rules ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("over", "words"), [
    ({"consumers": ["ghost"]}, "unknown consumers ['ghost']"),
    ({"fields": ["clue_id", "reporter.mobile"]}, "no field 'reporter.mobile'"),
    ({"mask": {"reporter.phone": "smudge"}}, "unknown mask 'smudge'"),
    ({"mask": {"subject.nickname": "name"}}, "no field 'subject.nickname'"),
])
def test_a_rule_naming_what_does_not_exist_is_refused(over: dict[str, Any], words: str) -> None:
    """Unknown consumers, field paths (checked against the schemas) and masks stop the policy."""
    with pytest.raises(PolicyDefinitionError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Policy([party("ruled"), party(SOURCE)], [rule(**over)])


def test_duplicate_rule_ids_are_refused() -> None:
    """Two rules with one id would make explanations ambiguous."""
    with pytest.raises(PolicyDefinitionError, match="duplicate"):
        Policy([party("ruled")], [rule(), rule()])


def test_the_most_specific_rule_wins_and_the_others_are_explained() -> None:
    """Overlapping rules: more conditions and longer prefixes win; both show in the decision."""
    broad = rule(id="broad", fields=["clue_id"])
    narrow = rule(id="narrow", when={"region_prefix": "3701"}, fields=["clue_id", "category"], mask={})
    policy = Policy([party("ruled")], [broad, narrow])
    decision = policy.decide(clue(), "ruled", TODAY)
    assert decision.rule == "narrow"
    assert [name for name, _ in decision.considered] == ["narrow", "broad"]
    assert "more specific" in decision.considered[1][1]
    assert policy.decide(clue(region_code="370202"), "ruled", TODAY).rule == "broad"


@pytest.mark.parametrize(("when", "record_over", "applies"), [
    ({"region_prefix": "3701"}, {}, True),
    ({"region_prefix": ["3702", "3703"]}, {}, False),
    ({"matter_prefix": "370123"}, {}, True),
    ({"matter_prefix": "3799"}, {}, False),
    ({"subject_kind": "2"}, {}, True),
    ({"subject_kind": "1"}, {}, False),
    ({"grade": "general"}, {}, True),
    ({"grade": ["important", "core"]}, {"grade": "core"}, True),
    ({"grade": "important"}, {}, False),
])
def test_conditions_on_the_record(when: dict[str, Any], record_over: dict[str, Any], applies: bool) -> None:
    """``when`` conditions: region prefix, matter-code prefix, subject kind, grade."""
    policy = Policy([party("ruled")], [rule(when=when)])
    decision = policy.decide(clue(**record_over), "ruled", TODAY)
    assert decision.allowed is applies
    if not applies:
        assert "does not match" in decision.considered[0][1]


@pytest.mark.parametrize(("window", "allowed", "words"), [
    ({"valid_from": "2026-01-01", "valid_until": "2026-12-31"}, True, "applies"),
    ({"valid_until": "2026-11-25"}, False, "expired on 2026-11-25"),
    ({"valid_from": "2026-11-27"}, False, "valid from 2026-11-27"),
    ({"enabled": False}, False, "disabled"),
])
def test_validity_windows_and_disabled_rules(window: dict[str, Any], allowed: bool, words: str) -> None:
    """An expired agreement, one not yet in force, and a disabled rule share nothing, and say why."""
    decision = Policy([party("ruled")], [rule(**window)]).decide(clue(), "ruled", TODAY)
    assert decision.allowed is allowed
    assert words in decision.considered[0][1]


def test_fields_through_arrays_and_whole_objects() -> None:
    """A path through an array applies to each element; a path naming an object shares all of it."""
    record = copy.deepcopy(VALID_RECORDS["inspection"])
    record.update(region_code="370102", sharing="conditional")
    policy = Policy([party("ruled")], [rule(record_types=["inspection"], fields=["inspectors.name", "subject"],
                                            mask={"inspectors.name": "name", "subject.name": "keep:2:0"})])
    shared = policy.share(record, policy.decide(record, "ruled", TODAY))
    data = shared.record["data"]
    assert set(data) == {"inspectors", "subject"}
    assert [p["name"][0] for p in data["inspectors"]] == [p["name"][0] for p in record["data"]["inspectors"]]
    assert all(set(p) == {"name"} and p["name"].endswith("*") for p in data["inspectors"])
    assert data["subject"]["cert_no"] == record["data"]["subject"]["cert_no"]
    assert data["subject"]["name"].startswith(record["data"]["subject"]["name"][:2])
    assert shared.masked == ("inspectors.name", "subject.name")
    assert "inspectors.cert_no" in shared.omitted and "result" in shared.omitted


# ---- routing --------------------------------------------------------------------------------------

def test_jurisdiction_by_region_level() -> None:
    """Province 370000 ⊃ city 370100 ⊃ county 370102; a county next door gets nothing."""
    wants = ["inspection"]
    parties = [party(SOURCE), party("province", consumes=wants), party("city", "370100", consumes=wants),
               party("county", "370102", consumes=wants), party("neighbour", "370103", consumes=wants),
               party("qingdao", "370200", consumes=wants)]
    record = copy.deepcopy(VALID_RECORDS["inspection"])
    record["region_code"] = "370102"
    routes = Policy(parties, []).routes(record, SOURCE, catalogue=no_catalogue, producer=no_producer)
    assert [(r.consumer, r.reason) for r in routes] == [
        ("province", "subscription"), ("city", "subscription"), ("county", "subscription")]


def test_a_clue_goes_to_its_matters_lead_and_co_departments() -> None:
    """Catalogue routing: the matter's departments get the clue without subscribing to clues."""
    lead, co = "11370000AL7LL93D6K", "11370000B7HR4HLY1F"
    parties = [party(SOURCE), party("housing", code=lead, consumes=["license"]),
               party("fire", "370200", code=co), party("transport", code="11370000JUCCNBB658")]
    record = clue()
    catalogue = {record["data"]["matter_code"]: [lead, co]}
    routes = Policy(parties, []).routes(record, SOURCE, catalogue=lambda m: catalogue.get(m, []),
                                        producer=no_producer)
    assert [(r.consumer, r.reason) for r in routes] == [("housing", "catalogue"), ("fire", "catalogue")]


def test_a_risk_warning_goes_to_the_departments_it_names() -> None:
    """Explicit targets: ``target_department_codes``."""
    record = copy.deepcopy(VALID_RECORDS["risk_warning"])
    targets = record["data"]["target_department_codes"]
    parties = [party(SOURCE), party("named", code=targets[0]), party("other", code="11370000JUCCNBB658")]
    routes = Policy(parties, []).routes(record, SOURCE, catalogue=no_catalogue, producer=no_producer)
    assert [(r.consumer, r.reason) for r in routes] == [("named", "target")]


def test_feedback_goes_back_to_the_producer_of_the_record_it_refers_to() -> None:
    """Reply routing, whatever the producer consumes; no producer found, no reply route."""
    record = copy.deepcopy(VALID_RECORDS["feedback"])
    parties = [party(SOURCE), party("hotline"), party("bystander")]
    policy = Policy(parties, [])
    routes = policy.routes(record, SOURCE, catalogue=no_catalogue, producer=lambda refers: "hotline")
    assert [(r.consumer, r.reason) for r in routes] == [("hotline", "reply")]
    assert policy.routes(record, SOURCE, catalogue=no_catalogue, producer=no_producer) == []


@pytest.mark.parametrize(("parties", "rules", "receivable"), [
    ([party(SOURCE)], [], False),  # nobody consumes it
    ([party(SOURCE, consumes=["inspection"])], [], True),  # the producer receives its own
    ([party(SOURCE, consumes=["inspection"], receive_own=False)], [], False),
    ([party(SOURCE), party("far", region="440000", consumes=["inspection"])], [], True),  # another region's
    ([party(SOURCE), party("off", consumes=["inspection"], enabled=False)], [], False),
    ([party(SOURCE), party("asked")], [{"origin": "request 7"}], True),  # a granted request routes
    ([party(SOURCE), party("asked")], [{"origin": "request 7", "enabled": False}], False),
    ([party(SOURCE), party("asked")], [{}], False),  # a rule alone allows; it does not route
])
def test_may_receive_is_false_only_where_routing_gives_nobody(
        parties: list[ConnectorConfig], rules: list[dict[str, Any]], receivable: bool) -> None:
    """Routing skips reading the payload of a record nobody could receive: that test must never
    say "nobody" where ``routes`` names someone for a record of the type."""
    consumer = [p.id for p in parties if p.id != SOURCE][:1] or ["none"]
    policy = Policy(parties, [SharingRule.model_validate(
        {"id": "r", "record_types": ["inspection"], "consumers": consumer, "purpose": "监管", **over})
        for over in rules])
    record = {**copy.deepcopy(VALID_RECORDS["inspection"]), "region_code": "370102", "sharing": "conditional"}
    routed = policy.routes(record, SOURCE, catalogue=no_catalogue, producer=no_producer, today=TODAY)
    assert policy.may_receive(SOURCE, "inspection") is receivable
    assert receivable or routed == []
    for named in ("feedback", "risk_warning", "clue"):  # records of these name their consumers
        assert policy.may_receive(SOURCE, named)


def test_a_producer_gets_its_own_records_unless_it_opts_out_and_a_disabled_connector_nothing() -> None:
    """Routing as defined includes a producer that subscribes to its own type;
    ``receive_own = false`` leaves its own records out. A disabled connector receives nothing."""
    off = party("off", consumes=["clue"], enabled=False)
    policy = Policy([party(SOURCE, consumes=["clue"]), off], [])
    assert policy.routes(clue(), SOURCE, catalogue=no_catalogue, producer=no_producer) == [
        Route(SOURCE, "subscription")]
    policy = Policy([party(SOURCE, consumes=["clue"], receive_own=False), off], [])
    assert policy.routes(clue(), SOURCE, catalogue=no_catalogue, producer=no_producer) == []
    explained = policy.explain({**clue(), "source": {"connector": SOURCE}}, SOURCE, TODAY, catalogue=no_catalogue,
                               producer=no_producer)
    assert "receive_own = false" in explained["reason"]


# ---- the matrix: every record type × sharing class × kind of consumer -----------------------------

KINDS = ("ruled", "plain", "system-of-record", "out-of-jurisdiction")
CLASSES = ("unconditional", "conditional", "none")


def matrix_parties() -> list[ConnectorConfig]:
    """A producer and one consumer of each kind, all consuming every type."""
    every = list(VALID_RECORDS)
    codes = ("11370000AL7LL93D6K", "11370000B7HR4HLY1F", "11370000JUCCNBB658", "11370000FT2JP7NQ02",
             "11370000R3BKC8GB5G")
    return [party(SOURCE, code=codes[0], produces=every),
            party("ruled", code=codes[1], consumes=every), party("plain", code=codes[2], consumes=every),
            party("system-of-record", code=codes[3], consumes=every, system_of_record=True),
            party("out-of-jurisdiction", "370200", code=codes[4], consumes=every)]


def matrix_rules() -> list[SharingRule]:
    """For each type, the first two fields of its ``data``, the first masked keep:1:1 when it is text."""
    rules = []
    for record_type, record in VALID_RECORDS.items():
        first, second = list(record["data"])[:2]
        mask = {first: "keep:1:1"} if isinstance(record["data"][first], str) else {}
        rules.append(SharingRule(id=f"{record_type}-rule", record_types=[record_type],
                                 consumers=["ruled", "out-of-jurisdiction"], purpose="监管", fields=[first, second],
                                 mask=mask))
    return rules


def matrix_record(record_type: str, sharing: str) -> dict[str, Any]:
    """The valid record of a type, in 370102 with a sharing class, as stored (source, seq)."""
    record = copy.deepcopy(VALID_RECORDS[record_type])
    record.update(region_code="370102", sharing=sharing, source={"connector": SOURCE}, seq=7, version=1,
                  received_at="2026-11-26T08:00:00.000+00:00")
    if record_type == "risk_warning":
        record["data"].pop("target_department_codes", None)  # explicit targets are tested above
    return record


def expected(record: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """What a consumer of ``kind`` receives, stated directly from the routing and sharing rules (``None``: nothing)."""
    sharing = record["sharing"]
    if kind == "out-of-jurisdiction":
        return None
    if kind == "system-of-record":
        return record if sharing in ("unconditional", "none") else None
    if kind == "plain":
        return record if sharing == "unconditional" else None
    if sharing == "none":
        return None
    first, second = list(record["data"])[:2]
    data = {first: record["data"][first], second: record["data"][second]}
    if isinstance(data[first], str):
        text = data[first]
        data[first] = "*" * len(text) if len(text) <= 2 else text[0] + "*" * (len(text) - 2) + text[-1]
    return {**{k: record[k] for k in ENVELOPE if k in record}, "data": data}


def received(policy: Policy, record: dict[str, Any], consumer: str) -> dict[str, Any] | None:
    """What the policy delivers to ``consumer``: routed, allowed, shaped."""
    routes = {r.consumer for r in policy.routes(record, SOURCE, catalogue=no_catalogue, producer=no_producer)}
    if consumer not in routes:
        return None
    decision = policy.decide(record, consumer, TODAY)
    return policy.share(record, decision).record if decision.allowed else None


@pytest.mark.parametrize("record_type", list(VALID_RECORDS))
@pytest.mark.parametrize("sharing", CLASSES)
def test_the_policy_matrix(record_type: str, sharing: str) -> None:
    """Exactly which fields arrive at each kind of consumer, masked how, for every type and class."""
    policy = Policy(matrix_parties(), matrix_rules())
    record = matrix_record(record_type, sharing)
    for kind in KINDS:
        assert received(policy, record, kind) == expected(record, kind), kind


@pytest.mark.parametrize("odd", [
    {"record_type": "risk_warning", "data": {"target_department_codes": 5, "matter_code": ["x"]}},
    {"record_type": "risk_warning", "data": {"target_department_codes": [{}, None]}},
    {"record_type": "feedback", "data": {"refers_to": "clue-1"}},
    {"record_type": ["clue"], "region_code": 370102, "sharing": {}, "data": []},
    {},
])
def test_explaining_an_odd_record_never_fails(odd: dict[str, Any]) -> None:
    """Records that are not valid still get an answer (the admin API explains whatever it is sent)."""
    policy = Policy(matrix_parties(), matrix_rules())
    for kind in KINDS:
        result = policy.explain(odd, kind, TODAY, catalogue=no_catalogue, producer=no_producer)
        assert result["allowed"] in (True, False) and result["reason"]
