"""Sources the gateway fetches itself: folders where files are dropped, and systems it polls
(the simulators of ``connectors.testing`` playing the systems). Nothing lost, nothing doubled."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from connectors.testing import DepartmentSimulator, EnforcementOversightSimulator, InternetPlusSimulator
from gateway.config import Config, load_config
from gateway.exceptions import ConfigError, SourceError
from gateway.flow.sources import FileDrop, SourcePoller
from gateway.http.app import create_app
from gateway.http.context import SOURCES, STORE
from gateway.store.model import SourceMark
from tests.conftest import SAMPLES
from tests.gateway.conftest import ADMIN_TOKEN, CONFIG_TEXT, NOW, SECRETS, Signed, inspection

MORE_SECRETS = {"drop": "secret-drop-0123456789abcdef", "xdrop": "secret-xdrop-0123456789abcde",
                "sdrop": "secret-sdrop-0123456789abcde", "pip": "secret-pip-0123456789abcdefg",
                "peo": "secret-peo-0123456789abcdefg", "pdept": "secret-pdept-0123456789abcde",
                "odd": "secret-odd-0123456789abcdefg", "dr2": "secret-dr2-0123456789abcdefg"}
DROPS = """
[[connector]]
id = "drop"
name = "双随机平台导出目录"
kind = "file_drop"
mapping = "double_random.result"
department_code = "11370000FT2JP7NQ02"
region_code = "370000"
produces = ["inspection"]
watch_dir = "drop/dr"

[[connector]]
id = "xdrop"
name = "执法监督导出目录"
kind = "file_drop"
mapping = "enforcement_oversight.penalty"
department_code = "11370000JUCCNBB658"
region_code = "370000"
produces = ["penalty"]
watch_dir = "drop/eo"

[[connector]]
id = "sdrop"
name = "标准记录目录"
kind = "file_drop"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["inspection"]
watch_dir = "drop/std"
"""


def _load(tmp_path: Path, extra: str) -> Config:
    path = tmp_path / "supex.toml"
    path.write_text(CONFIG_TEXT + extra, encoding="utf-8")
    env = {f"SUPEX_SECRET_{k.upper()}": v for k, v in {**SECRETS, **MORE_SECRETS}.items()}
    return load_config(path, environ=env)


Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def drops(tmp_path: Path, aiohttp_client: Client) -> TestClient[Any, Any]:
    """A gateway (nothing running in the background) with three watched folders."""
    return await aiohttp_client(create_app(_load(tmp_path, DROPS), clock=lambda: NOW, deliver=False))


def _drop(client: TestClient[Any, Any], connector: str = "drop") -> FileDrop:
    drop: FileDrop = client.app[SOURCES].drops[connector]
    return drop


def _stored(client: TestClient[Any, Any]) -> int:
    return int(client.app[STORE].store.counts()["records"])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


async def _settle(drop: FileDrop) -> list[dict[str, Any]]:
    """Two looks at the folder: a file is taken once it has not changed between them."""
    assert await drop.scan_once() == []
    return await drop.scan_once()


# ---- file drop --------------------------------------------------------------------------------------


async def test_a_gb18030_csv_is_taken_whole_and_moved_to_done_with_a_report(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client)
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "results.csv")
    (report,) = await _settle(drop)
    assert report["status"] == "done"
    assert (report["records"], report["accepted"], report["rejected"]) == (12, 12, 0)
    assert [r["status"] for r in report["results"]] == ["accepted"] * 12
    assert _files(drop.folder) == ["done/results.csv", "done/results.csv.report.json"]
    on_disk = json.loads((drop.folder / "done/results.csv.report.json").read_text(encoding="utf-8"))
    assert on_disk["batch_id"] == report["batch_id"] and len(on_disk["results"]) == 12
    assert _stored(client) == 12
    received = [e for e in client.app[STORE].store.log.entries() if e.event == "received"]
    assert received[-1].reason == "12 records from file results.csv"


async def test_the_same_file_again_is_not_taken_twice(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client)
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "results.csv")
    await _settle(drop)
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "results.csv")
    (again,) = await _settle(drop)
    assert again["status"] == "already_ingested"
    assert _stored(client) == 12
    kept = [p.name for p in (drop.folder / "done").iterdir() if p.suffix == ".csv"]
    assert "results.csv" in kept and len(kept) == 2  # the second beside the first, not over it


async def test_a_crash_after_the_commit_and_before_the_move_is_finished_later(drops: TestClient[Any, Any]) -> None:
    """The file's digest is stored with its records: found again, it is moved, not ingested again."""
    client = drops
    drop = _drop(client)
    data = (SAMPLES / "results.gb18030.csv").read_bytes()
    (drop.folder / "results.csv").write_bytes(data)
    prepared = drop.preparer.prepare(drop.connector, drop.mapping, data, "text/csv", "2026-11-26T12:00:00Z")
    digest = hashlib.sha256(data).hexdigest()
    store = client.app[STORE]
    await store.ingest("drop", "b-1", prepared.incoming, prepared.rejected,
                       SourceMark(f"file:{digest}", json.dumps({"batch_id": "b-1"}), "file results.csv"))
    (report,) = await _settle(drop)
    assert (report["status"], report["batch_id"]) == ("already_ingested", "b-1")
    assert _stored(client) == 12
    assert (drop.folder / "done/results.csv").exists()


_HEADER = (SAMPLES / "results.gb18030.csv").read_bytes().splitlines()[0]


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("empty.csv", b"", "empty"),
    ("blank.json", b"  \n", "empty"),
    ("truncated.csv", _HEADER + "\n\"unterminated".encode("gb18030"), "line 2"),
    ("short-header.csv", "抽查任务编号,计划编号\n1,2\n".encode("gb18030"),
     "the mapped column '检查日期' is not in the header"),
    ("workbook.csv", b"PK\x03\x04\x14\x00", "a ZIP archive (an .xlsx workbook?), not CSV"),
    ("notes.docx", b"PK\x03\x04", "unsupported file type '.docx'"),
    ("not-text.csv", b"\x80\x80\x80,\xff\n1,2\n", "not in any of the encodings utf-8, gb18030"),
    ("bad-bytes-inside.csv", _HEADER + b"\n\xff\x80" + b"," * _HEADER.count(b",") + b"\n",
     "line 2: bytes not valid"),
])
async def test_a_file_that_cannot_be_taken_whole_goes_to_failed_with_the_reason(
        drops: TestClient[Any, Any], name: str, content: bytes, reason: str) -> None:
    client = drops
    drop = _drop(client)
    (drop.folder / name).write_bytes(content)
    (report,) = await _settle(drop)
    assert report["status"] == "failed" and reason in report["error"]
    assert _files(drop.folder) == [f"failed/{name}", f"failed/{name}.report.json"]
    assert _stored(client) == 0
    assert drop.status.files == {"done": 0, "failed": 1}
    rejected = [e for e in client.app[STORE].store.log.entries() if e.event == "rejected"]
    assert rejected[-1].reason.startswith(f"file {name}: ")


async def test_a_truncated_xml_file_fails_whole_and_nothing_of_it_is_stored(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client, "xdrop")
    text = (SAMPLES / "penalties.xml").read_bytes()
    (drop.folder / "cut.xml").write_bytes(text[: len(text) * 2 // 3])
    (drop.folder / "whole.xml").write_bytes(text)
    reports = {r["file"]: r for r in await _settle(drop)}
    assert reports["cut.xml"]["status"] == "failed"
    assert (reports["whole.xml"]["status"], reports["whole.xml"]["accepted"]) == ("done", 3)
    assert _stored(client) == 3


async def test_a_file_still_being_written_is_left_until_it_stops_changing(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client)
    data = (SAMPLES / "results.gb18030.csv").read_bytes()
    path = drop.folder / "results.csv"
    path.write_bytes(data[:100])
    assert await drop.scan_once() == []
    path.write_bytes(data[:400])  # still growing: not taken
    assert await drop.scan_once() == []
    path.write_bytes(data)
    assert await drop.scan_once() == []
    (report,) = await drop.scan_once()
    assert report["accepted"] == 12


async def test_temporary_and_hidden_names_are_never_read(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client)
    for name in (".incoming", "results.csv.tmp", "results.csv.part", "~lock.csv"):
        (drop.folder / name).write_bytes((SAMPLES / "results.gb18030.csv").read_bytes())
    assert await _settle(drop) == []
    (drop.folder / ".incoming").rename(drop.folder / "results.csv")  # the writer's final rename
    assert await drop.scan_once() == []
    (report,) = await drop.scan_once()
    assert report["file"] == "results.csv"


async def test_standard_records_as_ndjson_and_json_with_a_byte_order_mark(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client, "sdrop")
    lines = b"\n".join(json.dumps(inspection(n), ensure_ascii=False).encode() for n in range(3))
    (drop.folder / "a.ndjson").write_bytes(lines)
    (drop.folder / "b.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([inspection(n) for n in range(3, 5)]).encode())
    bad = inspection(9)
    bad["data"]["subject"]["cert_no"] = "91370102MA3C4GXX0A"  # wrong check character: quarantined, file done
    (drop.folder / "c.json").write_bytes(json.dumps([inspection(8), bad]).encode())
    reports = {r["file"]: r for r in await _settle(drop)}
    assert {name: (r["status"], r["accepted"], r["rejected"]) for name, r in reports.items()} == {
        "a.ndjson": ("done", 3, 0), "b.json": ("done", 2, 0), "c.json": ("done", 1, 1)}
    assert reports["c.json"]["results"][1]["errors"][0]["code"] == "uscc_checksum"
    assert _stored(client) == 6


async def test_the_admin_api_shows_what_each_folder_did(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client)
    (drop.folder / "empty.csv").write_bytes(b"")
    await _settle(drop)
    status, body = await Signed(client).call("GET", "/v1/admin/connectors", bearer=ADMIN_TOKEN)
    assert status == 200
    listed = {c["id"]: c for c in body["connectors"]}
    assert listed["drop"]["source"]["files"] == {"done": 0, "failed": 1}
    assert "empty" in listed["drop"]["source"]["last_error"]
    assert "source" not in listed["amr"]


async def test_a_connector_disabled_at_run_time_has_its_folder_left_alone(drops: TestClient[Any, Any]) -> None:
    client = drops
    drop = _drop(client)
    gw = Signed(client)
    assert (await gw.call("POST", "/v1/admin/connectors/drop/disable", bearer=ADMIN_TOKEN))[0] == 200
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "results.csv")
    assert await _settle(drop) == []
    assert _files(drop.folder) == ["results.csv"]
    assert (await gw.call("POST", "/v1/admin/connectors/drop/enable", bearer=ADMIN_TOKEN))[0] == 200
    assert len(await _settle(drop)) == 1


# ---- polling ----------------------------------------------------------------------------------------


def _polled(port_urls: dict[str, str]) -> str:
    return "".join(f"""
[[connector]]
id = "{cid}"
name = "被轮询的系统 {cid}"
kind = "{kind}"
department_code = "{code}"
region_code = "370000"
produces = ["{produces}"]
identifiers = "lenient"
poll_url = "{port_urls[cid]}/records"
poll_limit = 5
poll_max_pages = 4
poll_timeout_seconds = 0.5
""" for cid, kind, code, produces in (("pip", "internet_plus", "11370000R3BKC8GB5G", "inspection"),
                                      ("peo", "enforcement_oversight", "11370000JUCCNBB658", "penalty"),
                                      ("pdept", "http_json", "11370000FE1KM2U90Y", "inspection")))


async def _no_sleep(_seconds: float) -> None:
    return None


class Polled:
    """Three simulated systems and a gateway that polls them (by hand, through ``poll``)."""

    def __init__(self, tmp_path: Path, aiohttp_client: Client) -> None:
        self.tmp_path, self.aiohttp_client = tmp_path, aiohttp_client
        rows = json.loads((SAMPLES / "check_actions.json").read_text(encoding="utf-8"))
        clock = lambda: NOW  # noqa: E731 - the gateway's fixed clock, for the signatures
        self.systems = {"pip": InternetPlusSimulator("pip", MORE_SECRETS["pip"], rows=rows, clock=clock),
                        "peo": EnforcementOversightSimulator("peo", MORE_SECRETS["peo"], clock=clock),
                        "pdept": DepartmentSimulator("pdept", MORE_SECRETS["pdept"], clock=clock)}
        self._client: TestClient[Any, Any] | None = None

    @property
    def client(self) -> TestClient[Any, Any]:
        assert self._client is not None, "the gateway is not started"
        return self._client

    async def start_gateway(self) -> TestClient[Any, Any]:
        config = _load(self.tmp_path, _polled({c: s.url for c, s in self.systems.items()}))
        self._client = await self.aiohttp_client(create_app(config, clock=lambda: NOW, deliver=False))
        for poller in self.client.app[SOURCES].pollers.values():
            poller._sleep = _no_sleep
        return self.client

    def poller(self, connector: str) -> SourcePoller:
        poller: SourcePoller = self.client.app[SOURCES].pollers[connector]
        return poller

    async def poll(self, connector: str) -> int:
        return await self.poller(connector).poll_once()

    def cursor(self, connector: str) -> str | None:
        cursor: str | None = self.client.app[STORE].store.records.source_mark(connector, "cursor")
        return cursor


@pytest.fixture
async def polled(tmp_path: Path, aiohttp_client: Client) -> AsyncIterator[Polled]:
    setup = Polled(tmp_path, aiohttp_client)
    for system in setup.systems.values():
        await system.start()
    await setup.start_gateway()
    yield setup
    for system in setup.systems.values():
        await system.stop()


async def test_a_poll_reads_every_page_and_stores_the_cursor_with_the_records(polled: Polled) -> None:
    assert await polled.poll("pip") == 12
    assert [p.get("since") for p in polled.systems["pip"].polls] == [None, "5", "10", "12"]
    assert polled.cursor("pip") == "12"
    assert all(p["limit"] == "5" for p in polled.systems["pip"].polls)
    assert _stored(polled.client) == 12
    assert await polled.poll("pip") == 0  # caught up: one poll, nothing new


async def test_after_a_restart_polling_resumes_from_the_stored_cursor(polled: Polled, tmp_path: Path) -> None:
    await polled.poll("pip")
    await polled.client.close()
    system = polled.systems["pip"]
    system.rows.append({**system.rows[0], "record_unique_identity": "11370000FT2JP7NQ02-JC-20260806-99999"})
    system.polls.clear()
    await polled.start_gateway()
    assert await polled.poll("pip") == 1
    assert system.polls[0]["since"] == "12"
    assert _stored(polled.client) == 13


async def test_an_xml_system_gives_its_cursor_in_a_header(polled: Polled) -> None:
    system = polled.systems["peo"]
    text = (SAMPLES / "penalties.xml").read_bytes()
    system.rows = system.parse(text, "application/xml")
    assert await polled.poll("peo") == 3
    assert polled.cursor("peo") == "3"


async def test_a_system_that_fails_for_a_while_is_retried_within_the_round(polled: Polled) -> None:
    polled.systems["pip"].fail_next(2, status=503)
    assert await polled.poll("pip") == 12


@pytest.mark.parametrize(("behaviour", "message"), [
    ("html", "HTML page"),
    ("garbage", "cannot be read"),
    ("repeat_cursor", "the cursor it was given"),
    ("redirect", "answered 302"),
])
async def test_a_system_that_answers_badly_is_reported_and_nothing_is_skipped(
        polled: Polled, behaviour: str, message: str) -> None:
    system = polled.systems["pip"]
    system.behave(behaviour)
    with pytest.raises(SourceError, match=message):
        await polled.poll("pip")
    assert message in (polled.poller("pip").status.last_error or "")
    system.behave("normal")
    cursor = polled.cursor("pip")
    system.polls.clear()
    await polled.poll("pip")
    assert system.polls[0].get("since") == cursor  # resumed after what was stored, nothing skipped
    assert _stored(polled.client) == 12


async def test_a_system_that_times_out_fails_the_round_after_the_retries(polled: Polled) -> None:
    system = polled.systems["pdept"]
    system.rows = [inspection(n) for n in range(3)]
    system.slow_down(2.0)
    with pytest.raises(SourceError, match=r"TimeoutError.*after 3 attempts"):
        await polled.poll("pdept")
    system.slow_down(0)
    assert await polled.poll("pdept") == 3


async def test_a_system_that_pages_forever_is_read_a_round_at_a_time_without_doubles(polled: Polled) -> None:
    system = polled.systems["pip"]
    system.behave("endless")  # the same five rows behind ever new cursors
    assert await polled.poll("pip") == 20  # poll_max_pages = 4 pages of 5
    assert len(system.polls) == 4
    assert _stored(polled.client) == 5
    assert polled.cursor("pip") == "20"


async def test_an_empty_answer_is_an_empty_page(polled: Polled) -> None:
    system = polled.systems["pdept"]
    system.rows = []
    system.page = lambda rows, after: web.Response(body=b"", content_type="application/json")  # type: ignore[method-assign]
    assert await polled.poll("pdept") == 0
    assert polled.poller("pdept").status.last_error is None


async def test_a_disabled_connector_is_not_polled(polled: Polled) -> None:
    gw = Signed(polled.client)
    assert (await gw.call("POST", "/v1/admin/connectors/pip/disable", bearer=ADMIN_TOKEN))[0] == 200
    assert await polled.poll("pip") == 0
    assert polled.systems["pip"].polls == []


async def test_records_a_poll_brings_are_validated_like_pushed_ones(polled: Polled) -> None:
    system = polled.systems["pdept"]
    bad = inspection(2)
    bad["record_type"] = "penalty"
    system.rows = [inspection(1), bad]
    assert await polled.poll("pdept") == 2
    assert _stored(polled.client) == 1
    assert polled.client.app[STORE].store.counts()["quarantined"] == 1


# ---- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    ('kind = "file_drop"', "needs a watch_dir"),
    ('watch_dir = "x"', "does not drop files"),
    ('kind = "file_drop"\nwatch_dir = "x"\npoll_url = "http://127.0.0.1:1/r"', "cannot be polled"),
    ('kind = "carrier_pigeon"', "unknown connector kind 'carrier_pigeon' (known: double_random, "
                                "enforcement_oversight, file_drop, http_json, internet_plus)"),
    ('poll_every = "often"', "not a duration"),
])
def test_source_settings_that_do_not_fit_the_kind_are_refused(tmp_path: Path, extra: str, message: str) -> None:
    text = f"""
[[connector]]
id = "odd"
name = "odd"
department_code = "11370000FT2JP7NQ02"
region_code = "370000"
{extra}
"""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, text)


def test_a_double_random_connector_may_also_drop_files(tmp_path: Path) -> None:
    config = _load(tmp_path, '\n[[connector]]\nid = "dr2"\nname = "dr2"\nkind = "double_random"\n'
                   'department_code = "11370000FT2JP7NQ02"\nregion_code = "370000"\nwatch_dir = "d"\n')
    assert config.connectors()["dr2"].mapping_name == "double_random.result"


async def test_one_gateway_on_a_database_reads_a_folder_the_others_stand_by(drops: TestClient[Any, Any]) -> None:
    """Gateways sharing a database take turns per source: the holder renews its turn every round;
    another stands by, and is shown so, until the holder stops renewing."""
    sources, drop = drops.app[SOURCES], _drop(drops)
    assert await sources.my_turn(drop) is True
    here = sources.name
    sources.name = "elsewhere:8440"  # as another gateway on the same database
    assert await sources.my_turn(drop) is False
    _, body = await Signed(drops).call("GET", "/v1/admin/connectors", bearer=ADMIN_TOKEN)
    assert {c["id"]: c for c in body["connectors"]}["drop"]["source"]["standby"] is True
    sources.name = here
    assert await sources.my_turn(drop) is True and drop.status.standby is False


# ---- file drop: a folder that others can write to ------------------------------------------------

async def test_a_symlink_in_the_folder_is_not_followed(drops: TestClient[Any, Any], tmp_path: Path) -> None:
    """``ln -s …/secrets.toml drop/x.csv``: the link is left where it is, its target neither read
    nor moved, and nothing of it reaches the rejections (the attack served the file's lines)."""
    client, drop = drops, _drop(drops)
    secret = tmp_path / "outside" / "secrets.toml"
    secret.parent.mkdir()
    secret.write_text('api_password = "MARKER-OUTSIDE-7731"\n')
    (drop.folder / "x.csv").symlink_to(secret)
    (drop.folder / "fifo.csv").parent.mkdir(exist_ok=True)
    os.mkfifo(drop.folder / "fifo.csv")  # a reader opening it would hang: it is never opened
    (drop.folder / "sub.csv").mkdir()
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "results.csv")
    (report,) = await _settle(drop)
    assert report["file"] == "results.csv"
    assert (drop.folder / "x.csv").is_symlink() and (drop.folder / "fifo.csv").exists()
    assert secret.read_text() == 'api_password = "MARKER-OUTSIDE-7731"\n'
    rejections = client.app[STORE].store.records.rejections("drop", 0, 1000)
    assert "MARKER-OUTSIDE" not in json.dumps(rejections, ensure_ascii=False)
    assert await drop.scan_once() == []  # and stay left on later looks


@pytest.mark.parametrize("replaced", ["done", "failed"])
async def test_done_or_failed_replaced_by_a_symlink_stops_the_source(drops: TestClient[Any, Any], tmp_path: Path,
                                                                     replaced: str) -> None:
    """A ``done/`` or ``failed/`` that is a symlink to another folder (a venv's site-packages): nothing
    is read or moved until it is fixed, and the admin listing says why."""
    client, drop = drops, _drop(drops)
    elsewhere = tmp_path / "site-packages"
    elsewhere.mkdir()
    (drop.folder / replaced).symlink_to(elsewhere, target_is_directory=True)
    (drop.folder / "evil.pth").write_text("import os\n")
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "results.csv")
    assert await _settle(drop) == []
    assert list(elsewhere.iterdir()) == [] and (drop.folder / "results.csv").exists() and _stored(client) == 0
    assert "not a real folder" in (drop.status.last_error or "")
    answer = await client.get("/v1/admin/connectors", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    listed = {c["id"]: c for c in (await answer.json())["connectors"]}
    assert "not a real folder" in listed["drop"]["source"]["last_error"]
    (drop.folder / replaced).unlink()  # fixed: the folder is read again
    (report, _) = await _settle(drop)
    assert report["file"] == "evil.pth" and report["status"] == "failed"
    assert drop.status.last_error is not None and "not a real folder" not in drop.status.last_error


async def test_a_symlink_planted_where_a_report_goes_is_never_written_through(drops: TestClient[Any, Any],
                                                                             tmp_path: Path) -> None:
    drop = _drop(drops)
    victims = {name: tmp_path / f"victim-{name}.txt" for name in ("done", "failed")}
    for name, victim in victims.items():
        victim.write_text("original\n")
        (drop.folder / name).mkdir(exist_ok=True)
    (drop.folder / "done" / "r.csv.report.json").symlink_to(victims["done"])
    (drop.folder / "failed" / "q.csv.report.json").symlink_to(victims["failed"])
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / "r.csv")
    (drop.folder / "q.csv").write_bytes("抽查任务编号,计划编号\n\"unterminated".encode("gb18030"))
    reports = await _settle(drop)
    assert sorted(r["status"] for r in reports) == ["done", "failed"]
    assert all(v.read_text() == "original\n" for v in victims.values())
    written = sorted(p.name for p in (drop.folder / "done").iterdir() if not p.is_symlink())
    assert written[0] == "r.csv" and written[1].startswith("r.csv.") and written[1].endswith(".report.json")
    assert oct((drop.folder / "done" / written[1]).stat().st_mode & 0o777) == oct(0o600)


async def test_a_name_with_control_characters_is_moved_aside_unread(drops: TestClient[Any, Any]) -> None:
    client, drop = drops, _drop(drops)
    name = "results\x1b[2J\n.csv"
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / name)
    (report,) = await _settle(drop)
    assert report["status"] == "failed" and "control characters" in report["error"]
    assert _stored(client) == 0 and not (drop.folder / name).exists()
    moved = drop.folder / "failed" / report["moved_as"]
    assert moved.read_bytes() == (SAMPLES / "results.gb18030.csv").read_bytes()
    assert json.loads((moved.parent / f"{moved.name}.report.json").read_text())["file"] == repr(name)


async def test_a_hard_link_to_a_file_elsewhere_is_not_read(drops: TestClient[Any, Any], tmp_path: Path) -> None:
    client, drop = drops, _drop(drops)
    elsewhere = tmp_path / "elsewhere.csv"
    shutil.copy(SAMPLES / "results.gb18030.csv", elsewhere)
    os.link(elsewhere, drop.folder / "linked.csv")
    (report,) = await _settle(drop)
    assert report["status"] == "failed" and "hard links" in report["error"] and _stored(client) == 0
    assert elsewhere.read_bytes() == (SAMPLES / "results.gb18030.csv").read_bytes()


async def test_a_name_too_long_for_its_report_is_moved_under_a_shorter_one(drops: TestClient[Any, Any]) -> None:
    drop = _drop(drops)
    name = "结果" * 40 + ".csv"  # 244 bytes: no room left for ".report.json"
    shutil.copy(SAMPLES / "results.gb18030.csv", drop.folder / name)
    (report,) = await _settle(drop)
    assert report["status"] == "done" and report["file"] == name
    (moved,) = [p for p in (drop.folder / "done").iterdir() if not p.name.endswith(".report.json")]
    assert moved.name.startswith("renamed.") and moved.suffix == ".csv"
    assert json.loads((moved.parent / f"{moved.name}.report.json").read_text())["file"] == name
