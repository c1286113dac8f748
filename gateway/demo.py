"""``supex demo``: the gateway and simulated systems together, in a scripted tour of a minute.

Everything runs on this machine, on loopback ports, in a fresh folder: the gateway (embedded
SQLite store), the 12345 hotline, the provincial market-regulation system, the enforcement
oversight system, Internet+ Supervision, a folder the double-random platform drops exports into,
and Jinan's city platform. The tour pushes real sample data through and shows what each side
receives, then verifies the exchange log.
"""

from __future__ import annotations

import asyncio
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
from schemas import example_record

__all__ = ["DEMO_CONNECTORS", "run_demo"]

AUDITOR_TOKEN = "demo-auditor-" + secrets.token_hex(8)
DEMO_CONNECTORS = ("amr", "hotline", "enforcement", "internet-plus", "double-random-files", "jinan")
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
consumes = ["clue"]

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

[[sharing]]
id = "clue-to-amr"
record_types = ["clue"]
consumers = ["amr"]
purpose = "线索核查"
fields = ["clue_id", "category", "description", "region_code", "matter_code", "subject", "reporter.name",
          "reporter.phone"]
mask = {{ "reporter.name" = "name", "reporter.phone" = "phone" }}
deliver_within = "24h"

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
        config = load_config(self.folder / "supex-demo.toml", environ=environ)
        runner = web.AppRunner(create_app(config), access_log=None)
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
        await self.clue_and_feedback()
        await self.penalty_to_internet_plus()
        await self.dropped_csv_to_jinan()
        await self.verify_log()

    async def clue_and_feedback(self) -> None:
        self.step(1, "12345 热线线索经事项目录路由到牵头部门 / a hotline clue reaches its lead department")
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
        self.console.print("省市场监管局 pulls its inbox and receives, under rule clue-to-amr (the reporter masked, "
                           "the ID number not shared at all):")
        self.show(received["data"])

        self.step(2, "部门反馈回到热线系统 / the department's feedback returns to the hotline")
        feedback = example_record("feedback")
        feedback["data"]["refers_to"]["record_id"] = clue["record_id"]
        async with self.client("amr") as amr:
            await amr.push([feedback])
        await _until(lambda: bool(self.systems["hotline"].records))
        (back,) = self.systems["hotline"].records
        self.console.print("the hotline system receives, by signed push (reply routing to the clue's producer):")
        self.show({"record_type": back["record_type"], "refers_to": back["data"]["refers_to"],
                   "content": back["data"]["content"]})

    async def penalty_to_internet_plus(self) -> None:
        self.step(3, "执法监督系统的处罚决定以互联网+监管格式送达 / a penalty reaches Internet+ in its own format")
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
        self.step(4, "双随机 GB18030 CSV 投入目录，济南市收到脱敏数据 / a dropped GB18030 CSV reaches Jinan, masked")
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
        self.step(5, "校验交换日志 / the exchange log is verified")
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

