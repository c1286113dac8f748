"""The sharing procedure through the running gateway: requests, decisions, objections, grants and
revocations; objections to records and their corrections; feedback duties; the producers'
timeliness and the quality report; every step on the log. Time is moved, never waited for."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from connectors.signing import signature_headers
from gateway.config import Config, load_config
from gateway.http.app import create_app
from gateway.http.context import DEADLINES, METRICS, STORE
from gateway.store import open_store
from gateway.store.runner import StoreRunner
from tests.conftest import VALID_RECORDS
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, NOW

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
async def world(tmp_path: Path, aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> World:
    config = procedure_config(tmp_path)
    clock = Moment(START)
    runner = StoreRunner(open_store(config.store_path(), log_hash="sha256", clock=clock))
    client = await aiohttp_client(create_app(config, clock=lambda: NOW, store=runner, deliver=False))
    return World(client, clock)


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
