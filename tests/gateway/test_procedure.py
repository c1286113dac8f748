"""The sharing procedure through the running gateway: requests, decisions, objections, grants and
revocations; objections to records and their corrections; feedback duties; the producers'
timeliness and the quality report; every step on the log. Time is moved, never waited for."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openpyxl
import pytest
from aiohttp.test_utils import TestClient

import gateway.flow.procedure as flow
from connectors.signing import signature_headers
from connectors.testing import DepartmentSimulator
from gateway.cli import main
from gateway.config import Config, load_config
from gateway.http.app import create_app
from gateway.http.context import DEADLINES, METRICS, STORE
from gateway.store.runner import StoreRunner
from schemas import load_schema_set
from tests.backends import Backend
from tests.conftest import VALID_RECORDS
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, NOW
from tests.gateway.test_console import Browser

SECRETS = {c: f"secret-{c}-".ljust(28, "x") for c in ("hotline", "amr", "jinan", "office", "tax")}
CST = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 9, 24, 10, 0, tzinfo=CST)  # the Thursday before the Mid-Autumn and National Day holidays
PROCEDURE = """
[procedure]
coordinator = "office"

[[obligation]]
id = "clue-handling"
record_type = "clue"
consumers = ["amr"]
within = "3wd"
remind_before = "1wd"
description = "线索处置反馈 / feedback on a clue's handling"

[timeliness]
penalty = "7wd"
"""
CONFIG = f"""
[gateway]
store = "sqlite:///supex.db"
log_hash = "sha256"
prepare_processes = 0
allow_plaintext_at_rest = true

[[admin]]
name = "ops"
token_sha256 = "{hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}"

[[auditor]]
name = "sec"
token_sha256 = "{hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest()}"

[[connector]]
id = "hotline"
name = "12345 热线"
department_code = "11370000R3BKC8GB5G"
region_code = "370000"
produces = ["clue"]
consumes = ["feedback"]

[[connector]]
id = "amr"
name = "省市场监管局"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["feedback", "inspection"]

[[connector]]
id = "jinan"
name = "济南市监管平台"
department_code = "11370000AL7LL93D6K"
region_code = "370100"
consumes = ["inspection"]

[[connector]]
id = "office"
name = "省政务服务管理办公室"
department_code = "11370000JUCCNBB658"
region_code = "370000"
system_of_record = true

[[connector]]
id = "tax"
name = "省税务局"
department_code = "11370000B7HR4HLY1F"
region_code = "370000"
produces = ["penalty"]
{PROCEDURE}"""


class Moment:
    """The store's clock, moved by the test."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.astimezone(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def to(self, moment: dt.datetime) -> None:
        self.now = moment.astimezone(dt.UTC)


class Party:
    """Calls signed as one connector, or with a bearer token."""

    def __init__(self, client: TestClient[Any, Any], name: str | None = None, token: str | None = None) -> None:
        self.client, self.name, self.token = client, name, token

    async def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if self.name:
            headers.update(signature_headers(self.name, SECRETS[self.name], method, path, raw, now=lambda: NOW))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        answer = await self.client.request(method, path, data=raw or None, headers=headers)
        return answer.status, await answer.json()


def procedure_config(folder: Path, text: str = CONFIG) -> Config:
    (folder / "supex.toml").write_text(text, encoding="utf-8")
    return load_config(folder / "supex.toml", environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()},
                       now=START)


class World:
    """A gateway with the procedure's parties, its store's clock in the test's hand."""

    def __init__(self, client: TestClient[Any, Any], clock: Moment) -> None:
        self.client, self.clock = client, clock
        self.config_text = CONFIG
        self.app = client.app
        self.hotline, self.amr, self.jinan, self.office, self.tax = (
            Party(client, n) for n in ("hotline", "amr", "jinan", "office", "tax"))
        self.admin, self.auditor = Party(client, token=ADMIN_TOKEN), Party(client, token=AUDITOR_TOKEN)

    @property
    def store(self) -> Any:
        return self.app[STORE].store

    async def sweep(self) -> dict[str, int]:
        return await self.app[DEADLINES].sweep()

    def log(self, *events: str) -> list[Any]:
        return [e for e in self.store.log.entries() if not events or e.event in events]


@pytest.fixture
async def world(tmp_path: Path, backend: Backend,
                aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> World:
    """The procedure's gateway, on SQLite and on PostgreSQL."""
    text = CONFIG.replace('"sqlite:///supex.db"', f'"{backend.setting}"')
    config = procedure_config(tmp_path, text)
    clock = Moment(START)
    runner = StoreRunner(backend.open(clock=clock))
    client = await aiohttp_client(create_app(config, clock=lambda: NOW, store=runner, deliver=False))
    world = World(client, clock)
    world.config_text = text
    return world


def clue(n: int, region: str = "370102", **changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(VALID_RECORDS["clue"])
    record.update(record_id=f"xs-{n}", region_code=region, occurred_at="2026-09-24T09:00:00+08:00", **changes)
    record.pop("version", None)
    return record


REQUEST = {"record_type": "clue", "provider": "hotline", "purpose": "食品安全投诉举报线索核查",
           "scenario": "市场监管部门对 12345 转来的食品安全线索进行核查处置", "basis": "《食品安全法》第一百一十五条",
           "regions": ["3701"], "fields": ["clue_id", "category", "description", "region_code", "matter_code",
                                            "subject", "reporter"], "valid_until": "2027-12-31"}


async def test_the_whole_story(world: World) -> None:
    """The market regulator requests the hotline's clues for food safety in 3701xx; the hotline
    approves with masks in time; clues flow; feedback on one comes late and is escalated; a
    consumer objects to a record and the producer corrects it; the quality report shows both."""
    status, made = await world.amr("POST", "/v1/sharing-requests", REQUEST)
    assert status == 201, made
    assert made["status"] == "submitted"
    # conditional data, catalogued by the hotline: 5 working days from Thursday 24 September 2026 —
    # Friday 25th (Mid-Autumn), the weekend and 1–7 October are not counted: 28, 29, 30 Sep, 8, 9 Oct
    assert made["due_at"] == "2026-10-09T15:59:59.999+00:00"
    status, notices = await world.hotline("GET", "/v1/notices")
    assert [n["kind"] for n in notices["notices"]] == ["sharing_request"]
    # a pull connector is also handed its notices with its inbox, once
    status, page = await world.hotline("GET", "/v1/inbox")
    assert [n["item"] for n in page["notices"]] == [made["id"]]
    assert "notices" not in (await world.hotline("GET", "/v1/inbox"))[1]

    # nothing flows before the decision
    assert (await world.hotline("POST", "/v1/records", [clue(1)]))[0] == 200
    assert (await world.amr("GET", "/v1/inbox"))[1]["records"] == []

    world.clock.to(dt.datetime(2026, 9, 29, 9, 0, tzinfo=CST))
    status, decided = await world.hotline("POST", f"/v1/sharing-requests/{made['id']}/decision", {
        "decision": "approve", "reason": "符合共享条件",
        "conditions": {"mask": {"reporter.phone": "phone", "reporter.name": "name", "reporter.id_no": "id_no"},
                       "max_reads_per_day": 500}})
    assert status == 200, decided
    assert decided["status"] == "approved"
    assert decided["rule"] == f"grant-{made['id']}"
    status, rules = await world.admin("GET", "/v1/admin/sharing")
    rule = next(r for r in rules["rules"] if r["id"] == decided["rule"])
    assert rule["origin"] == f"sharing-request:{made['id']}"
    assert rule["when"]["source"] == "hotline"

    # clues of 3701xx now reach the regulator, masked; one of 3702xx does not
    assert (await world.hotline("POST", "/v1/records", [clue(2), clue(3, region="370202")]))[0] == 200
    status, page = await world.amr("GET", "/v1/inbox")
    assert [r["record_id"] for r in page["records"]] == ["xs-2"]
    reporter = page["records"][0]["data"]["reporter"]
    assert reporter["phone"] == "138****5678"
    assert reporter == {"name": "欧阳**", "phone": "138****5678", "id_no": "370202********5153"}
    await world.amr("POST", "/v1/inbox/ack", {"cursor": page["next"]})

    # a feedback duty was opened: 3 working days from 29 September are 30 Sep, 8 and 9 October
    status, duties = await world.amr("GET", "/v1/obligations?status=open")
    assert [(d["record_id"], d["due_at"]) for d in duties["obligations"]] == [
        ("xs-2", "2026-10-09T15:59:59.999+00:00")]
    # a reminder the working day before, then the duty runs out and is escalated to the coordinator
    world.clock.to(dt.datetime(2026, 10, 9, 8, 0, tzinfo=CST))
    assert await world.sweep() == {"duty_reminded": 1}
    world.clock.to(dt.datetime(2026, 10, 10, 8, 0, tzinfo=CST))
    assert await world.sweep() == {"duty_overdue": 1}
    assert world.app[METRICS].procedure_overdue.labels("duty")._value.get() == 1
    status, office = await world.office("GET", "/v1/notices")
    assert [n["kind"] for n in office["notices"]] == ["overdue"]
    assert office["notices"][0]["owed_by"] == "amr"
    # the feedback comes late: the duty is met, late
    feedback = copy.deepcopy(VALID_RECORDS["feedback"])
    feedback.pop("version", None)
    feedback.update(record_id="fk-xs-2", occurred_at="2026-10-10T09:00:00+08:00")
    feedback["data"].update(refers_to={"record_type": "clue", "record_id": "xs-2", "connector": "hotline"},
                            by_department_code="11370000FE1KM2U90Y", kind="handled")
    status, pushed = await world.amr("POST", "/v1/records", [feedback])
    assert status == 200, pushed
    status, met = await world.auditor("GET", "/v1/obligations?status=met")
    assert [(d["record_id"], d["in_time"]) for d in met["obligations"]] == [("xs-2", False)]

    # the regulator objects to the clue's subject; the hotline corrects it, naming the objection
    status, objection = await world.amr("POST", "/v1/records/xs-2/objections", {
        "reason": "主体名称有误", "pointers": ["/data/subject/name"],
        "proposed": {"/data/subject/name": "济南某餐饮管理有限公司"}})
    assert status == 201, objection
    assert objection["producer"] == "hotline"
    status, notices = await world.hotline("GET", f"/v1/notices?after={notices['notices'][-1]['id']}")
    assert "record_objected" in [n["kind"] for n in notices["notices"]]
    corrected = clue(2)
    corrected["data"]["subject"]["name"] = "济南某餐饮管理有限公司"
    corrected["corrects"] = objection["id"]
    assert (await world.hotline("POST", "/v1/records", [corrected]))[0] == 200
    status, after = await world.amr("GET", f"/v1/objections/{objection['id']}")
    assert after["status"] == "corrected"
    status, page = await world.amr("GET", "/v1/inbox")
    assert [(r["record_id"], r["version"], r["corrects"]) for r in page["records"]] == [("xs-2", 2, objection["id"])]

    # the quality report: the correction to the hotline, the late feedback to the regulator
    status, report = await world.auditor("GET", "/v1/quality?month=2026-10")
    rows = {r["connector"]: r for r in report["producers"]}
    assert rows["hotline"]["corrected"] == 1
    assert rows["amr"]["feedback_late"] == 1
    status, behind = await world.auditor("GET", "/v1/quality/records?month=2026-10&connector=amr&figure=feedback_late")
    assert [r["record_id"] for r in behind["records"]] == ["xs-2"]

    # every step is on the log, with its actor, and in the record's trail
    events = [(e.event, e.connector) for e in world.log(
        "request_submitted", "request_approved", "duty_opened", "duty_reminded", "duty_overdue", "duty_met",
        "record_objected", "objection_corrected")]
    assert events == [("request_submitted", "amr"), ("request_approved", "hotline"), ("duty_opened", "gateway"),
                      ("duty_reminded", "gateway"), ("duty_overdue", "gateway"), ("duty_met", "amr"),
                      ("record_objected", "amr"), ("objection_corrected", "hotline")]
    status, trail = await world.hotline("GET", "/v1/records/xs-2/trail")
    assert {"duty_opened", "duty_met", "record_objected", "objection_corrected"} <= {e["event"] for e in
                                                                                       trail["events"]}
    assert list(world.store.log.verify())[-1].ok


async def _requested(world: World, **changes: Any) -> dict[str, Any]:
    status, made = await world.amr("POST", "/v1/sharing-requests", {**REQUEST, **changes})
    assert status == 201, made
    return made


async def test_unconditional_data_is_granted_once_the_compliance_check_has_passed(world: World) -> None:
    """Inspections are unconditional: 2 working days without a refusal, then the rule is granted."""
    status, made = await world.tax("POST", "/v1/sharing-requests", {
        **REQUEST, "record_type": "inspection", "provider": "amr", "fields": None, "regions": None})
    assert status == 201, made
    # Thursday 24 September: Friday 25th is Mid-Autumn, so Monday 28th and Tuesday 29th
    assert made["due_at"] == "2026-09-29T15:59:59.999+00:00"
    world.clock.to(dt.datetime(2026, 9, 29, 23, 0, tzinfo=CST))
    assert await world.sweep() == {}
    world.clock.to(dt.datetime(2026, 9, 30, 0, 1, tzinfo=CST))
    assert await world.sweep() == {"request_granted": 1}
    status, granted = await world.tax("GET", f"/v1/sharing-requests/{made['id']}")
    assert (granted["status"], granted["rule"]) == ("granted", f"grant-{made['id']}")
    assert [h["step"] for h in granted["history"]] == ["request_submitted", "request_granted"]
    record = copy.deepcopy(VALID_RECORDS["inspection"])
    record.pop("version", None)
    assert (await world.amr("POST", "/v1/records", [record]))[0] == 200
    status, page = await world.tax("GET", "/v1/inbox")
    assert [r["record_id"] for r in page["records"]] == [record["record_id"]]
    assert await world.sweep() == {}  # granted once


async def test_a_refusal_needs_a_reason_and_an_objection_goes_to_the_coordinating_admin(world: World) -> None:
    made = await _requested(world)
    path = f"/v1/sharing-requests/{made['id']}"
    status, said = await world.hotline("POST", f"{path}/decision", {"decision": "refuse"})
    assert (status, said["error"]["code"]) == (400, "invalid")
    assert "reason" in said["error"]["message"]
    status, refused = await world.hotline("POST", f"{path}/decision", {"decision": "refuse", "reason": "涉及个人信息"})
    assert (status, refused["status"]) == (200, "refused")
    assert (await world.hotline("POST", f"{path}/decision", {"decision": "approve"}))[0] == 409
    assert (await world.hotline("POST", f"{path}/objection", {"reason": "x"}))[0] == 409  # the requester's step
    status, objected = await world.amr("POST", f"{path}/objection", {"reason": "核查线索是法定职责"})
    assert (status, objected["status"]) == (200, "objected")
    status, office = await world.office("GET", "/v1/notices")
    assert [n["kind"] for n in office["notices"]] == ["request_objected"]
    # the provider has had its say: the coordinating body decides now
    status, said = await world.hotline("POST", f"{path}/decision", {"decision": "approve"})
    assert status == 409 and "admin" in said["error"]["message"]
    status, ruled = await world.admin("POST", f"{path}/decision", {"decision": "refuse", "reason": "维持原决定"})
    assert (status, ruled["status"]) == (200, "refused")
    status, said = await world.amr("POST", f"{path}/objection", {"reason": "再次异议"})
    assert status == 409 and "final" in said["error"]["message"]
    actors = [(e.event, e.connector) for e in world.log("request_refused", "request_objected")]
    assert actors == [("request_refused", "hotline"), ("request_objected", "amr"), ("request_refused", "admin:ops")]


async def test_an_objection_upheld_grants_the_request(world: World) -> None:
    made = await _requested(world)
    path = f"/v1/sharing-requests/{made['id']}"
    await world.hotline("POST", f"{path}/decision", {"decision": "refuse", "reason": "涉及个人信息"})
    await world.amr("POST", f"{path}/objection", {"reason": "核查线索是法定职责"})
    status, ruled = await world.admin("POST", f"{path}/decision", {
        "decision": "approve", "conditions": {"fields": ["clue_id", "category"]}})
    assert (status, ruled["status"]) == (200, "approved"), ruled
    status, rules = await world.admin("GET", "/v1/admin/sharing")
    assert next(r for r in rules["rules"] if r["id"] == ruled["rule"])["fields"] == ["clue_id", "category"]


async def test_an_approval_cannot_widen_the_request_and_its_conditions_are_checked(world: World) -> None:
    made = await _requested(world)
    path = f"/v1/sharing-requests/{made['id']}/decision"
    for conditions, words in (({"fields": ["deadline"]}, "not requested"), ({"mask": {"reporter.phone": "smudge"}},
                                                                             "smudge"),
                              ({"valid_until": "2030-01-01"}, "later than")):
        status, said = await world.hotline("POST", path, {"decision": "approve", "conditions": conditions})
        assert status == 400 and words in said["error"]["message"], said
    status, request = await world.hotline("GET", f"/v1/sharing-requests/{made['id']}")
    assert request["status"] == "submitted"
    assert (await world.admin("GET", "/v1/admin/sharing"))[1]["rules"] == []


async def test_an_unanswered_request_becomes_overdue_and_is_escalated(world: World) -> None:
    made = await _requested(world)
    world.clock.to(dt.datetime(2026, 10, 10, 0, 0, tzinfo=CST))
    assert await world.sweep() == {"request_overdue": 1}
    assert await world.sweep() == {}  # escalated once
    status, overdue = await world.admin("GET", "/v1/sharing-requests?status=overdue")
    assert [r["id"] for r in overdue["requests"]] == [made["id"]]
    assert world.app[METRICS].procedure_overdue.labels("request")._value.get() == 1
    for party in (world.office, world.hotline):
        status, said = await party("GET", "/v1/notices")
        assert "overdue" in [n["kind"] for n in said["notices"]]
    # late is better than never: the provider may still answer
    status, decided = await world.hotline("POST", f"/v1/sharing-requests/{made['id']}/decision",
                                          {"decision": "approve"})
    assert (status, decided["status"]) == (200, "approved")


async def test_a_revoked_grant_stops_routing_and_serving_at_once(world: World) -> None:
    made = await _requested(world)
    path = f"/v1/sharing-requests/{made['id']}"
    await world.hotline("POST", f"{path}/decision", {"decision": "approve"})
    assert (await world.hotline("POST", "/v1/records", [clue(1)]))[0] == 200  # routed, not yet pulled
    status, _ = await world.amr("POST", f"{path}/revoke", {"reason": "不要了"})
    assert status == 409  # only the provider or an admin revokes
    status, revoked = await world.hotline("POST", f"{path}/revoke", {"reason": "用途已超出申请范围"})
    assert (status, revoked["status"]) == (200, "revoked")
    assert (await world.amr("GET", "/v1/inbox"))[1]["records"] == []
    assert (await world.hotline("POST", "/v1/records", [clue(2)]))[0] == 200
    assert (await world.amr("GET", "/v1/inbox"))[1]["records"] == []
    assert [e.reason for e in world.log("config_changed")][-1].startswith("rule revoked")


async def test_a_connector_sees_and_answers_only_its_own_items(world: World) -> None:
    made = await _requested(world)
    assert (await world.jinan("GET", f"/v1/sharing-requests/{made['id']}"))[0] == 404
    assert (await world.jinan("POST", f"/v1/sharing-requests/{made['id']}/decision",
                              {"decision": "approve"}))[0] == 404
    assert (await world.jinan("GET", "/v1/sharing-requests"))[1]["requests"] == []
    assert len((await world.amr("GET", "/v1/sharing-requests?role=requester"))[1]["requests"]) == 1
    assert (await world.amr("GET", "/v1/sharing-requests?role=provider"))[1]["requests"] == []
    assert len((await world.hotline("GET", "/v1/sharing-requests?role=provider"))[1]["requests"]) == 1
    assert len((await world.auditor("GET", "/v1/sharing-requests"))[1]["requests"]) == 1
    for query in ("status=lost", "role=judge", "colour=red"):
        status, _ = await world.amr("GET", f"/v1/sharing-requests?{query}")
        assert status == 400, query
    assert (await world.auditor("GET", "/v1/sharing-requests?role=provider"))[0] == 400


@pytest.mark.parametrize(("change", "words"), [
    ({"provider": "ghost"}, "no connector 'ghost'"),
    ({"provider": "amr"}, "its own data"),
    ({"record_type": "gossip"}, "unknown record types"),
    ({"fields": ["reporter.mobile"]}, "no fields ['reporter.mobile']"),
    ({"regions": ["37010"]}, "2, 4 or 6 digits"),
    ({"valid_until": "2026-01-01"}, "has passed"),
    ({"purpose": ""}, "purpose"),
    ({"basis": None}, "basis"),
    ({"colour": "red"}, "colour"),
])
async def test_a_request_that_cannot_be_read_is_refused_naming_what(world: World, change: dict[str, Any],
                                                                    words: str) -> None:
    body = {k: v for k, v in {**REQUEST, **change}.items() if v is not None}
    status, said = await world.amr("POST", "/v1/sharing-requests", body)
    assert (status, said["error"]["code"]) == (400, "invalid"), said
    assert words in said["error"]["message"]
    assert world.log("request_submitted") == []


async def _given_clue(world: World) -> None:
    made = await _requested(world)
    await world.hotline("POST", f"/v1/sharing-requests/{made['id']}/decision", {"decision": "approve"})
    assert (await world.hotline("POST", "/v1/records", [clue(1)]))[0] == 200
    assert [r["record_id"] for r in (await world.amr("GET", "/v1/inbox"))[1]["records"]] == ["xs-1"]


async def test_an_objection_needs_a_record_received_and_pointers_into_it(world: World) -> None:
    objection = {"reason": "类别有误", "pointers": ["/data/category"]}
    assert (await world.amr("POST", "/v1/records/xs-1/objections", objection))[0] == 404  # not received
    await _given_clue(world)
    assert (await world.jinan("POST", "/v1/records/xs-1/objections", objection))[0] == 404  # not given to jinan
    for body, words in (({**objection, "pointers": ["/data/colour"]}, "nothing at"),
                        ({**objection, "pointers": ["/data/deadline"]}, "nothing at"),  # stored, not shared with it
                        ({**objection, "pointers": ["data/category"]}, "not a JSON pointer"),
                        ({**objection, "proposed": {"/data/region_code": "x"}}, "not among the pointers")):
        status, said = await world.amr("POST", "/v1/records/xs-1/objections", body)
        assert status == 400 and words in said["error"]["message"], said
    status, made = await world.amr("POST", "/v1/records/xs-1/objections", objection)
    assert (status, made["status"], made["version"]) == (201, "open", 1)
    assert made["due_at"] == "2026-10-09T15:59:59.999+00:00"  # 5 working days


async def test_a_producer_may_uphold_its_record_and_an_objection_may_run_out(world: World) -> None:
    await _given_clue(world)
    status, first = await world.amr("POST", "/v1/records/xs-1/objections",
                                    {"reason": "类别有误", "pointers": ["/data/category"]})
    status, said = await world.amr("POST", f"/v1/objections/{first['id']}/answer", {"reason": "我说没错"})
    assert status == 409 and "producer" in said["error"]["message"]
    status, upheld = await world.hotline("POST", f"/v1/objections/{first['id']}/answer", {"reason": "经核实无误"})
    assert (status, upheld["status"], upheld["answer"]) == (200, "upheld", "经核实无误")
    assert (await world.hotline("POST", f"/v1/objections/{first['id']}/answer", {"reason": "again"}))[0] == 409
    status, second = await world.amr("POST", "/v1/records/xs-1/objections",
                                     {"reason": "描述有误", "pointers": ["/data/description"]})
    world.clock.to(dt.datetime(2026, 10, 10, 0, 0, tzinfo=CST))
    assert await world.sweep() == {"objection_overdue": 1, "duty_overdue": 1}  # the clue's feedback too
    status, listed = await world.amr("GET", "/v1/objections?status=overdue&role=objector")
    assert [o["id"] for o in listed["objections"]] == [second["id"]]
    assert (await world.jinan("GET", f"/v1/objections/{second['id']}"))[0] == 404


async def test_a_correction_naming_no_objection_of_its_record_resolves_nothing_and_says_so(world: World) -> None:
    await _given_clue(world)
    _, made = await world.amr("POST", "/v1/records/xs-1/objections",
                              {"reason": "类别有误", "pointers": ["/data/category"]})
    wrong = clue(9, corrects=made["id"])  # another record
    assert (await world.hotline("POST", "/v1/records", [wrong]))[0] == 200
    assert (await world.amr("GET", f"/v1/objections/{made['id']}"))[1]["status"] == "open"
    [entry] = world.log("objection_unmatched")
    assert "another record" in (entry.reason or "")
    kinds = [n["kind"] for n in (await world.hotline("GET", "/v1/notices"))[1]["notices"]]
    assert "correction_unmatched" in kinds


async def test_a_late_record_is_stored_marked_late_and_counted(world: World) -> None:
    penalty = copy.deepcopy(VALID_RECORDS["penalty"])
    penalty.pop("version", None)
    on_time = {**copy.deepcopy(penalty), "record_id": "cf-2", "occurred_at": "2026-09-22T10:00:00+08:00"}
    penalty.update(record_id="cf-1", occurred_at="2026-09-10T10:00:00+08:00")  # 7 working days ran out on the 21st
    status, pushed = await world.tax("POST", "/v1/records", [penalty, on_time])
    assert status == 200 and [r["status"] for r in pushed["results"]] == ["accepted", "accepted"]
    [late] = world.log("late")
    assert (late.record_id, late.connector) == ("cf-1", "tax")
    status, report = await world.auditor("GET", "/v1/quality?month=2026-09")
    [row] = [r for r in report["producers"] if r["connector"] == "tax"]
    assert (row["received"], row["accepted"], row["late"], row["timeliness_rate"]) == (2, 2, 1, 0.5)
    assert row["department_code"] == "11370000B7HR4HLY1F"
    status, own = await world.tax("GET", "/v1/quality?month=2026-09")
    assert [r["connector"] for r in own["producers"]] == ["tax"]
    assert (await world.tax("GET", "/v1/quality/records?figure=late&connector=amr&month=2026-09"))[0] == 403
    status, behind = await world.tax("GET", "/v1/quality/records?figure=late&month=2026-09")
    assert [r["record_id"] for r in behind["records"]] == ["cf-1"]
    assert (await world.auditor("GET", "/v1/quality?month=2026-13"))[0] == 400
    # a correction of it is not another late report
    corrected = {**copy.deepcopy(penalty), "corrects": "obj-0000000000000000"}
    assert (await world.tax("POST", "/v1/records", [corrected]))[0] == 200
    assert len(world.log("late")) == 1


async def test_the_quality_report_as_csv_and_as_a_workbook_linking_figures_to_records(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    penalty = copy.deepcopy(VALID_RECORDS["penalty"])
    penalty.pop("version", None)
    penalty.update(record_id="cf-1", occurred_at="2026-09-10T10:00:00+08:00")
    assert (await world.tax("POST", "/v1/records", [penalty, {"record_type": "penalty"}]))[0] == 200
    # the command reads the store with the configuration; its own clock is today's, so it is told the month
    config = tmp_path / "supex.toml"
    config.write_text(world.config_text + '\n[calendar.2027]\nholidays = ["2027-01-01"]\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["quality", "report", "--config", str(config), "--month", "2026-09"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("连接器 / connector,部门代码 / department,报送 / received")
    assert lines[1].split(",")[:6] == ["tax", "11370000B7HR4HLY1F", "2", "1", "1", "1"]
    workbook = tmp_path / "quality.xlsx"
    assert main(["quality", "report", "--config", str(config), "--month", "2026-09", "--format", "xlsx",
                 "--output", str(workbook)]) == 0
    book = openpyxl.load_workbook(workbook)
    summary, records = book["quality"], book["records"]
    late = summary.cell(row=4, column=6)
    assert (summary.cell(row=4, column=1).value, late.value) == ("tax", "1")
    target = late.hyperlink.location if late.hyperlink.location else late.hyperlink.target
    row = int(target.rsplit("A", 1)[1])
    assert (records.cell(row=row, column=2).value, records.cell(row=row, column=3).value) == ("late", "cf-1")
    assert main(["quality", "report", "--config", str(config), "--month", "September"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["quality", "report", "--config", str(config), "--month", "2026-09", "--format", "xlsx"]) == 0
    assert (tmp_path / "quality-2026-09.xlsx").exists()


async def test_the_console_shows_open_items_and_quality_as_metadata_only(world: World) -> None:
    secret = "保密值QK31"
    await _given_clue(world)
    made = await _requested(world, record_type="clue", regions=["3702"])
    status, objection = await world.amr("POST", "/v1/records/xs-1/objections", {
        "reason": f"原因{secret}", "pointers": ["/data/category"], "proposed": {"/data/category": secret}})
    assert status == 201
    browser = Browser(world.client)
    await browser.sign_in()
    status, page = await browser.get("/console/procedure")
    assert status == 200
    assert made["id"] in page and objection["id"] in page and "/data/category" in page
    assert secret not in page
    world.clock.to(dt.datetime(2026, 10, 10, 0, 0, tzinfo=CST))
    await world.sweep()
    status, page = await browser.get("/console/procedure")
    assert page.count('class="overdue"') >= 3  # the request, the objection, the clue's duty
    status, page = await browser.get("/console/")
    assert 'id="procedure-chart"' in page
    status, page = await browser.get("/console/quality?month=2026-09")
    assert status == 200 and "/console/quality/records?month=2026-09&amp;connector=hotline&amp;figure=accepted" in page
    status, page = await browser.get("/console/quality/records?month=2026-09&connector=hotline&figure=accepted")
    assert status == 200 and "xs-1" in page and secret not in page
    assert (await browser.get("/console/quality?month=soon"))[0] == 400
    assert (await browser.get("/console/quality/records?month=2026-09&connector=hotline&figure=gossip"))[0] == 400
    looks = [e.reason.split()[1] for e in world.log("audit_query")]
    assert looks[-6:] == ["overview", "procedure", "procedure", "overview", "quality", "quality"]


async def test_where_the_calendar_runs_out_no_deadline_is_guessed(world: World) -> None:
    """At the year's end, 2027 unknown: a request is refused 503 naming the table to add; a duty a
    routed record brings is opened with no deadline and says so; the record is stored all the same."""
    made = await _requested(world)
    await world.hotline("POST", f"/v1/sharing-requests/{made['id']}/decision", {"decision": "approve"})
    world.clock.to(dt.datetime(2026, 12, 30, 10, 0, tzinfo=CST))
    status, said = await world.tax("POST", "/v1/sharing-requests", REQUEST)  # 5 working days: into 2027
    assert (status, said["error"]["code"]) == (503, "calendar_unknown")
    assert "[calendar.2027]" in said["error"]["message"]
    status, pushed = await world.hotline("POST", "/v1/records", [clue(5)])
    assert status == 200 and pushed["results"][0]["status"] == "accepted"
    [duty] = (await world.amr("GET", "/v1/obligations"))[1]["obligations"]
    assert duty["due_at"] is None
    [opened] = world.log("duty_opened")
    assert "NO DEADLINE SET" in (opened.reason or "") and "calendar.2027" in (opened.reason or "")


async def test_decisions_answers_and_objections_read_the_names_people_write(world: World) -> None:
    """``action`` for ``decision`` with the conditions beside it and ``masks`` for ``mask``; an
    answer saying ``upheld``; one proposed value for one pointer; a grant without an end date."""
    made = await _requested(world, valid_until=None)
    status, decided = await world.hotline("POST", f"/v1/sharing-requests/{made['id']}/decision", {
        "action": "approve", "masks": {"reporter.phone": "phone"}, "max_reads_per_day": 10})
    assert (status, decided["status"]) == (200, "approved"), decided
    rules = {r["id"]: r for r in (await world.admin("GET", "/v1/admin/sharing"))[1]["rules"]}
    granted = rules[decided["rule"]]
    assert (granted["mask"], granted["max_reads_per_day"], granted["valid_until"]) == (
        {"reporter.phone": "phone"}, 10, None)
    status, said = await world.hotline("POST", f"/v1/sharing-requests/{made['id']}/decision",
                                       {"decision": "maybe", "reason": "x"})
    assert status == 400 and "approve or refuse" in said["error"]["message"]
    assert (await world.hotline("POST", "/v1/records", [clue(1)]))[0] == 200
    await world.amr("GET", "/v1/inbox")
    status, made = await world.amr("POST", "/v1/records/xs-1/objections", {
        "reason": "类别有误", "paths": ["/data/category"], "proposed_value": "食品安全（餐饮）"})
    assert status == 201, made
    assert made["proposed"] == {"/data/category": "食品安全（餐饮）"}
    status, said = await world.amr("POST", "/v1/records/xs-1/objections", {
        "reason": "x", "pointers": ["/data/category", "/data/description"], "proposed": "one value"})
    assert status == 400 and "several pointers" in said["error"]["message"]
    status, said = await world.hotline("POST", f"/v1/objections/{made['id']}/answer",
                                       {"outcome": "corrected", "reason": "改了"})
    assert status == 400 and "corrects" in said["error"]["message"]
    status, upheld = await world.hotline("POST", f"/v1/objections/{made['id']}/answer",
                                         {"answer": "upheld", "reason": "经核实无误"})
    assert (status, upheld["status"]) == (200, "upheld")


async def test_limits_in_minutes_and_seconds_run_out_as_exactly(tmp_path: Path, backend: Backend,
                                                                aiohttp_client: Any) -> None:
    text = CONFIG.replace("[procedure]\n", '[procedure]\ncompliance_check = "90s"\nconditional_answer = "30m"\n')
    config = procedure_config(tmp_path, text.replace('"sqlite:///supex.db"', f'"{backend.setting}"'))
    clock = Moment(START)
    client = await aiohttp_client(create_app(config, clock=lambda: NOW, store=StoreRunner(backend.open(clock=clock)),
                                             deliver=False))
    world = World(client, clock)
    made = await _requested(world)
    assert made["due_at"] == "2026-09-24T02:30:00.000+00:00"  # 10:00 in Beijing, plus 30 minutes
    clock.to(START + dt.timedelta(minutes=29))
    assert await world.sweep() == {}
    clock.to(START + dt.timedelta(minutes=31))
    assert await world.sweep() == {"request_overdue": 1}


async def test_one_gateway_at_a_time_checks_the_deadlines(world: World) -> None:
    """Two gateways on one store: the turn is one's while it renews it, the other's once it lapses."""
    deadlines = world.app[DEADLINES]
    await _requested(world)
    world.clock.to(dt.datetime(2026, 10, 10, 0, 0, tzinfo=CST))
    assert await deadlines.round("gw-a", 1000.0) == {"request_overdue": 1}
    assert await deadlines.round("gw-b", 1001.0) is None  # gw-a holds it for three rounds of 5 s
    assert await deadlines.round("gw-a", 1010.0) == {}
    assert await deadlines.round("gw-b", 1024.0) is None
    assert await deadlines.round("gw-b", 1026.0) == {}  # gw-a stopped renewing: gw-b takes over
    assert await deadlines.round("gw-a", 1030.0) is None
    assert len(world.log("request_overdue")) == 1


async def test_data_not_to_be_shared_is_refused_at_once_but_to_a_system_of_record(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = load_schema_set()
    types = {**real.types, "clue": dataclasses.replace(real.types["clue"], sharing="none")}
    monkeypatch.setattr(flow, "load_schema_set", lambda: SimpleNamespace(types=types))
    status, refused = await world.amr("POST", "/v1/sharing-requests", REQUEST)
    assert (status, refused["status"], refused["sharing"]) == (201, "refused", "none")
    assert [h["step"] for h in refused["history"]] == ["request_submitted", "request_refused"]
    assert "systems of record" in refused["reason"]
    kinds = [n["kind"] for n in (await world.amr("GET", "/v1/notices"))[1]["notices"]]
    assert kinds == ["request_refused"]
    status, made = await world.office("POST", "/v1/sharing-requests", REQUEST)  # the system of record
    assert (status, made["status"]) == (201, "submitted")


async def test_a_push_connector_is_sent_its_notices_signed_until_it_takes_them(
        tmp_path: Path, backend: Backend, aiohttp_client: Any) -> None:
    async with DepartmentSimulator("hotline", SECRETS["hotline"], clock=lambda: NOW) as hotline:
        text = CONFIG.replace('produces = ["clue"]\nconsumes = ["feedback"]\n',
                              f'produces = ["clue"]\nconsumes = ["feedback"]\ndelivery = "push"\n'
                              f'endpoint = "{hotline.url}/in"\n')
        config = procedure_config(tmp_path, text.replace('"sqlite:///supex.db"', f'"{backend.setting}"'))
        clock = Moment(START)
        app = create_app(config, clock=lambda: NOW, store=StoreRunner(backend.open(clock=clock)), deliver=False)
        world = World(await aiohttp_client(app), clock)
        hotline.fail_next(1)
        made = await _requested(world)
        assert await world.sweep() == {}  # refused once: kept for the next round
        assert hotline.notices == []
        assert await world.sweep() == {"notices_pushed": 1}
        assert [(n["kind"], n["item"]) for n in hotline.notices] == [("sharing_request", made["id"])]
        assert hotline.refused[0].problem == "answered 503" and not hotline.received  # signed, not records
        assert await world.sweep() == {}  # sent once taken


async def test_lists_page_by_the_next_they_give_and_refuse_what_names_nothing(world: World) -> None:
    made = [await _requested(world) for _ in range(3)]
    status, first = await world.auditor("GET", "/v1/sharing-requests?limit=2")
    ids = [r["id"] for r in first["requests"]]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)  # newest first; made at one moment, by id
    status, second = await world.auditor("GET", f"/v1/sharing-requests?limit=2&after={first['next']}")
    assert status == 200 and second["next"] is None
    assert {r["id"] for r in first["requests"] + second["requests"]} == {m["id"] for m in made}
    status, said = await world.auditor("GET", "/v1/sharing-requests?after=req-0000000000000000")
    assert status == 400 and "next" in said["error"]["message"]
    for month in ("2026-1", "0001-01", "2026-13", "soon"):
        status, said = await world.auditor("GET", f"/v1/quality?month={month}")
        assert status == 400 and "YYYY-MM" in said["error"]["message"], month


async def test_the_scheduler_runs_a_round_then_waits_its_interval(world: World) -> None:
    """The serving loop: a round (the turn taken, a sweep), then the configured wait, again."""
    await _requested(world)
    world.clock.to(dt.datetime(2026, 10, 10, 0, 0, tzinfo=CST))
    waits: list[float] = []
    second = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            second.set()
        if len(waits) >= 2:
            await asyncio.Event().wait()  # the loop rests here until stopped

    deadlines = world.app[DEADLINES]
    await deadlines.start("gw-a", sleep=sleep, clock=lambda: 1000.0)
    await asyncio.wait_for(second.wait(), 10)
    await deadlines.stop()
    assert waits == [5.0, 5.0]
    assert len(world.log("request_overdue")) == 1


async def test_an_objection_left_undecided_is_escalated_to_the_coordinator(world: World) -> None:
    made = await _requested(world)
    path = f"/v1/sharing-requests/{made['id']}"
    await world.hotline("POST", f"{path}/decision", {"decision": "refuse", "reason": "涉及个人信息"})
    _, objected = await world.amr("POST", f"{path}/objection", {"reason": "核查线索是法定职责"})
    assert objected["due_at"] == "2026-10-15T15:59:59.999+00:00"  # 10 working days, Saturday 10 October one
    world.clock.to(dt.datetime(2026, 10, 17, 9, 0, tzinfo=CST))
    assert await world.sweep() == {"request_overdue": 1}
    _, after = await world.admin("GET", path)
    assert after["status"] == "objected" and after["escalated_at"] is not None
    kinds = [n["kind"] for n in (await world.office("GET", "/v1/notices"))[1]["notices"]]
    assert kinds == ["request_objected", "overdue"]
    assert (await world.admin("POST", f"{path}/decision", {"decision": "approve"}))[1]["status"] == "approved"
