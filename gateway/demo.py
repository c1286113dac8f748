"""``supex demo``: the gateway and simulated systems together, in a scripted tour of a minute.

Everything runs on this machine, on loopback ports, in a fresh folder: the gateway (embedded
SQLite store), the 12345 hotline, the provincial market-regulation system, the enforcement
oversight system, Internet+ Supervision, a folder the double-random platform drops exports into,
and Jinan's city platform. The tour pushes real sample data through and shows what each side
receives, then verifies the exchange log.

The sharing procedure's part of the tour counts deadlines in working days, which a minute cannot
wait for: the gateway's clock starts on Monday 2 November 2026, 09:00 in Beijing, and the tour
moves it forward, saying so, where a deadline is to pass.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console

from connectors import SupexClient
from connectors.testing import DepartmentSimulator, InternetPlusSimulator, SystemSimulator
from gateway.config import load_config
from gateway.http.app import create_app
from gateway.http.context import DEADLINES
from gateway.store import open_store
from gateway.store.runner import StoreRunner
from schemas import example_record

__all__ = ["DEMO_CONNECTORS", "run_demo"]

AUDITOR_TOKEN = "demo-auditor-" + secrets.token_hex(8)
DEMO_CONNECTORS = ("amr", "hotline", "enforcement", "internet-plus", "double-random-files", "jinan", "office")
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # the tour's first moment
_CONFIG = """
[gateway]
listen = "127.0.0.1:8440"                # not used: the tour binds a free port
store = "sqlite:///supex-demo.db"
log_hash = "sm3"

[[auditor]]
name = "sec-team"
token_sha256 = "{auditor}"

[[connector]]
id = "amr"
name = "省市场监管局 业务系统"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["matter", "feedback"]

[[connector]]
id = "hotline"
name = "12345政务服务便民热线"
department_code = "11370000R3BKC8GB5G"
region_code = "370000"
produces = ["clue"]
consumes = ["feedback"]
delivery = "push"
endpoint = "{hotline}/in"

[[connector]]
id = "enforcement"
name = "行政执法综合管理监督信息系统"
kind = "enforcement_oversight"
department_code = "11370000JUCCNBB658"
region_code = "370000"
produces = ["penalty"]

[[connector]]
id = "internet-plus"
name = "山东省互联网+监管系统"
kind = "internet_plus"
department_code = "11370000B7HR4HLY1F"
region_code = "370000"
consumes = ["penalty"]
delivery = "push"
endpoint = "{internet_plus}/in"

[[connector]]
id = "double-random-files"
name = "双随机一公开监管平台 导出目录"
kind = "file_drop"
mapping = "double_random.result"
department_code = "11370000AL7LL93D6K"
region_code = "370000"
produces = ["inspection"]
watch_dir = "drop/double-random"
watch_every = "1s"

[[connector]]
id = "jinan"
name = "济南市综合监管平台"
department_code = "11370100MB0000001A"
region_code = "370100"
consumes = ["inspection"]
delivery = "push"
endpoint = "{jinan}/in"

[[connector]]
id = "office"
name = "省政务服务管理办公室（协调机构）"
department_code = "11370000MB1234567R"
region_code = "370000"

[procedure]
coordinator = "office"

[[obligation]]
id = "clue-handling"
record_type = "clue"
routes = ["catalogue"]
within = "3wd"
remind_before = "1wd"

[[sharing]]
id = "inspections-to-jinan"
record_types = ["inspection"]
consumers = ["jinan"]
purpose = "属地监管"
fields = ["action_name", "plan_id", "matter_code", "subject", "result", "inspected_at", "inspectors",
          "implementing_org"]
mask = {{ "inspectors.name" = "name", "inspectors.cert_no" = "keep:2:2" }}
"""


def _sample(name: str) -> bytes:
    return resources.files("connectors").joinpath("samples", name).read_bytes()


async def _until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo waited too long for a delivery")
        await asyncio.sleep(0.1)


class _Tour:
    def __init__(self, folder: Path, console: Console) -> None:
        self.folder, self.console = folder, console
        self.secrets = {c: secrets.token_hex(16) for c in DEMO_CONNECTORS}
        self.systems: dict[str, SystemSimulator] = {
            "hotline": DepartmentSimulator("hotline", self.secrets["hotline"]),
            "internet-plus": InternetPlusSimulator("internet-plus", self.secrets["internet-plus"]),
            "jinan": DepartmentSimulator("jinan", self.secrets["jinan"]),
        }
        self.url = ""
        self.now = START.astimezone(dt.UTC)
        self.app: web.Application | None = None

    def clock(self) -> dt.datetime:
        """The gateway's clock for the tour: it starts at ``START`` and moves when the tour says."""
        return self.now

    async def move_to(self, moment: dt.datetime, why: str) -> dict[str, int]:
        """Move the gateway's clock forward and let the scheduler look at the deadlines."""
        self.now = moment.astimezone(dt.UTC)
        self.console.print(f"[dim]… the tour moves the gateway's clock to {moment:%Y-%m-%d %H:%M} ({why})[/dim]")
        assert self.app is not None
        return await self.app[DEADLINES].sweep()

    def client(self, connector: str) -> SupexClient:
        return SupexClient(self.url, connector, self.secrets[connector])

    def step(self, number: int, title: str) -> None:
        self.console.rule(f"[bold]{number}. {title}")

    def show(self, value: Any) -> None:
        self.console.print_json(json.dumps(value, ensure_ascii=False))

    async def run(self) -> None:
        for system in self.systems.values():
            await system.start()
        config_text = _CONFIG.format(auditor=hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest(),
                                     hotline=self.systems["hotline"].url,
                                     internet_plus=self.systems["internet-plus"].url, jinan=self.systems["jinan"].url)
        (self.folder / "supex-demo.toml").write_text(config_text, encoding="utf-8")
        environ = {f"SUPEX_SECRET_{c.upper().replace('-', '_')}": s for c, s in self.secrets.items()}
        config = load_config(self.folder / "supex-demo.toml", environ=environ, now=START)
        store = StoreRunner(open_store(config.store_path(), log_hash=config.gateway.log_hash, clock=self.clock))
        self.app = create_app(config, store=store)
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self.console.print(f"gateway on {self.url}, store and configuration in {self.folder}")
        try:
            await self.tour()
        finally:
            await runner.cleanup()
            for system in self.systems.values():
                await system.stop()

    async def tour(self) -> None:
        await self.request_and_grant()
        await self.clue_and_feedback()
        await self.objection_and_correction()
        await self.penalty_to_internet_plus()
        await self.dropped_csv_to_jinan()
        await self.verify_log()

    async def request_and_grant(self) -> None:
        self.step(1, "省市场监管局申请共享 12345 线索，热线在时限内批准 / a sharing request, approved in time")
        request = {"record_type": "clue", "provider": "hotline", "purpose": "食品安全投诉举报线索核查",
                   "scenario": "核查处置 12345 转来的食品安全线索", "basis": "《食品安全法》第一百一十五条",
                   "regions": ["3701"], "valid_until": "2027-12-31",
                   "fields": ["clue_id", "category", "description", "region_code", "matter_code", "subject",
                              "reporter.name", "reporter.phone"]}
        async with self.client("amr") as amr:
            made = await amr.request("POST", "/v1/sharing-requests", json.dumps(request).encode())
        self.console.print(f"省市场监管局 requests the hotline's clues in 3701xx: {made['id']} {made['status']}, a "
                           f"conditional class, the answer due by {made['due_at']} (5 working days)")
        await self.move_to(START + dt.timedelta(days=1), "a day later")
        decision = {"decision": "approve", "reason": "符合共享条件",
                    "conditions": {"mask": {"reporter.name": "name", "reporter.phone": "phone"}}}
        async with self.client("hotline") as hotline:
            decided = await hotline.request("POST", f"/v1/sharing-requests/{made['id']}/decision",
                                            json.dumps(decision).encode())
        self.console.print(f"the hotline approves with masks: {decided['status']}, the sharing rule "
                           f"{decided['rule']} created (its origin names the request):")
        self.show([(h["at"], h["step"], h["by"]) for h in decided["history"]])

    async def clue_and_feedback(self) -> None:
        self.step(2, "12345 热线线索经事项目录路由到牵头部门 / a hotline clue reaches its lead department")
        matter = example_record("matter")
        async with self.client("amr") as amr:
            await amr.push([matter])
        self.console.print(f"省市场监管局 registers matter {matter['data']['matter_code']} "
                           f"({matter['data']['name']}), lead department {matter['data']['lead_department_code']}")
        clue = json.loads(_sample("clue.json"))
        async with self.client("hotline") as hotline:
            answer = await hotline.push([clue])
            trail = await hotline.request("GET", f"/v1/records/{clue['record_id']}/trail")
        self.console.print(f"12345 hotline pushes clue {clue['record_id']} on matter {clue['data']['matter_code']}: "
                           f"{answer['accepted']} accepted; the exchange log says where it went:")
        for event in trail["events"]:
            if event["event"] in ("routed", "denied"):
                self.console.print(f"  {event['event']} → {event['connector']} by the {event['reason']} route "
                                   f"(rule {event.get('rule')}, purpose {event.get('purpose')})")
        async with self.client("amr") as amr:
            page = await amr.inbox()
            await amr.ack(page["next"])
        (received,) = page["records"]
        self.console.print("省市场监管局 pulls its inbox and receives, under the granted rule (the reporter masked, "
                           "the ID number not shared at all):")
        self.show(received["data"])
        async with self.client("amr") as amr:
            duties = await amr.request("GET", "/v1/obligations?status=open")
        (duty,) = duties["obligations"]
        self.console.print(f"as the matter's lead department it owes feedback on {duty['record_id']} by "
                           f"{duty['due_at']} (obligation {duty['obligation']}, 3 working days)")

        self.step(3, "反馈逾期被督办，迟到的反馈回到热线 / late feedback is escalated, then returns to the hotline")
        done = await self.move_to(START + dt.timedelta(days=6, hours=1), "past the deadline")
        self.console.print(f"the scheduler: {done}")
        async with self.client("office") as office:
            notices = await office.request("GET", "/v1/notices")
        overdue = [n for n in notices["notices"] if n["kind"] == "overdue"]
        self.console.print(f"the coordinator (省政务服务管理办公室) is told: {overdue[0]['item_kind']} "
                           f"{overdue[0]['item']} owed by {overdue[0]['owed_by']} was due {overdue[0]['due_at']}")
        feedback = example_record("feedback")
        feedback["data"]["refers_to"]["record_id"] = clue["record_id"]
        async with self.client("amr") as amr:
            await amr.push([feedback])
            met = await amr.request("GET", "/v1/obligations?status=met")
        self.console.print(f"省市场监管局 feeds back: the duty is met, in time: {met['obligations'][0]['in_time']}")
        await _until(lambda: bool(self.systems["hotline"].records))
        (back,) = self.systems["hotline"].records
        self.console.print("the hotline system receives, by signed push (reply routing to the clue's producer):")
        self.show({"record_type": back["record_type"], "refers_to": back["data"]["refers_to"],
                   "content": back["data"]["content"]})

    async def objection_and_correction(self) -> None:
        self.step(4, "校核纠错：接收方提出异议，报送方更正 / an objection to a record, and its correction")
        objection = {"reason": "主体名称与登记信息不符", "pointers": ["/data/subject/name"]}
        async with self.client("amr") as amr:
            made = await amr.request("POST", "/v1/records/xs-0001/objections", json.dumps(objection).encode())
        self.console.print(f"省市场监管局 objects to xs-0001 at {objection['pointers']}: {made['id']}, the answer due "
                           f"by {made['due_at']}")
        await self.move_to(START + dt.timedelta(days=7), "the next day")
        notices = self.systems["hotline"].notices
        self.console.print(f"the hotline system is told by signed push: {[n['kind'] for n in notices]}")
        clue = json.loads(_sample("clue.json"))
        clue["data"]["subject"]["name"] = "济南某餐饮管理有限公司"
        clue["corrects"] = made["id"]
        async with self.client("hotline") as hotline:
            await hotline.push([clue])
        async with self.client("amr") as amr:
            after = await amr.request("GET", f"/v1/objections/{made['id']}")
            page = await amr.inbox()
            await amr.ack(page["next"])
        (corrected,) = page["records"]
        self.console.print(f"the hotline pushes version {corrected['version']} naming the objection: "
                           f"{after['status']}; its recipient receives it: subject "
                           f"{corrected['data']['subject']['name']}")
        headers = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
        async with aiohttp.ClientSession() as session, \
                session.get(self.url + "/v1/quality?month=2026-11", headers=headers) as answer:
            report = await answer.json()
        self.console.print("the quality report for 2026-11 (及时率, 合格率):")
        self.show([{k: row[k] for k in ("connector", "received", "accepted", "corrected", "feedback_due",
                                        "feedback_late")} for row in report["producers"]])

    async def penalty_to_internet_plus(self) -> None:
        self.step(5, "执法监督系统的处罚决定以互联网+监管格式送达 / a penalty reaches Internet+ in its own format")
        async with self.client("enforcement") as enforcement:
            answer = await enforcement.push_body(_sample("penalties.xml"), "application/xml")
        self.console.print(f"the enforcement oversight system pushes 双公示 XML: {answer['accepted']} decisions "
                           "accepted")
        system = self.systems["internet-plus"]
        await _until(lambda: len(system.records) >= answer["accepted"])
        row = system.records[0]
        self.console.print(f"Internet+ Supervision receives {len(system.records)} rows of its 行政处罚行为 table "
                           "(the fine in yuan; the XML had 万元):")
        self.show({k: row[k] for k in ("record_unique_identity", "punish_document_number", "administrative_cp",
                                       "penalty_amount", "punish_date", "cd_operation") if k in row})

    async def dropped_csv_to_jinan(self) -> None:
        self.step(6, "双随机 GB18030 CSV 投入目录，济南市收到脱敏数据 / a dropped GB18030 CSV reaches Jinan, masked")
        folder = self.folder / "drop" / "double-random"
        data = _sample("results.gb18030.csv")
        partial = folder / ".results.csv.part"
        partial.write_bytes(data)
        partial.rename(folder / "results.csv")  # written under a temporary name, then renamed
        done = folder / "done" / "results.csv.report.json"
        await _until(done.exists)
        report = json.loads(done.read_text(encoding="utf-8"))
        self.console.print(f"the file is taken whole and moved to done/: {report['records']} rows, "
                           f"{report['accepted']} accepted, {report['rejected']} rejected (report beside it)")
        system = self.systems["jinan"]
        await _until(lambda: bool(system.records))
        await asyncio.sleep(0.5)  # the rest of the batch
        first = system.records[0]["data"]
        self.console.print(f"济南市综合监管平台 receives the {len(system.records)} inspections in 3701xx, under rule "
                           "inspections-to-jinan (inspectors' names and certificate numbers masked):")
        self.show({"subject": first["subject"]["name"], "result": first["result"]["label"],
                   "inspectors": first["inspectors"]})

    async def verify_log(self) -> None:
        self.step(7, "校验交换日志 / the exchange log is verified")
        headers = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
        async with aiohttp.ClientSession() as session, \
                session.get(self.url + "/v1/audit/verify", headers=headers) as answer:
            verdict = await answer.json()
        self.console.print(f"GET /v1/audit/verify → {verdict}: every entry hash-chained (SM3), none altered")


def run_demo(keep: Path | None = None, console: Console | None = None) -> int:
    """Run the tour in ``keep`` (or a temporary folder, removed afterwards); 0 when it went through."""
    console = console or Console(highlight=False)
    folder = keep or Path(tempfile.mkdtemp(prefix="supex-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        asyncio.run(_Tour(folder, console).run())
    finally:
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    console.print(f"[bold green]tour done in {time.monotonic() - started:.1f} s[/bold green]"
                  + (f"; everything is kept in {folder}" if keep else ""))
    return 0

