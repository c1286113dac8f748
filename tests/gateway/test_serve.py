"""`supex serve` as a process: push with `supex push`, durability across SIGKILL, `supex log verify`."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from connectors import SupexClient
from schemas import example_record
from tests.conftest import SAMPLES
from tests.gateway.conftest import AUDITOR_TOKEN, CONFIG_TEXT, SECRETS

SUPEX = str(Path(sys.executable).parent / "supex")
ENV = {**os.environ, **{f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A gateway process on a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "supex.toml"
        self.config.write_text(CONFIG_TEXT.replace("127.0.0.1:8440", f"127.0.0.1:{self.port}"), encoding="utf-8")
        self.log = folder / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([SUPEX, "serve", "--config", str(self.config)], env=ENV, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.log.read_text()) from None
                time.sleep(0.05)  # waiting for the process to listen, not timing a behaviour
        raise RuntimeError("gateway did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def supex(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SUPEX, *args], env=ENV, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    gateway = Served(tmp_path)
    gateway.start()
    yield gateway
    gateway.kill()


async def _push_personal_data(url: str) -> dict[str, object]:
    clue = {"record_type": "clue", "record_id": "xs-1", "op": "upsert", "occurred_at": "2026-05-01T09:30:00+08:00",
            "region_code": "370102", "data": {"clue_id": "12345-1", "channel": "12345",
                                             "received_at": "2026-05-01T09:30:00+08:00", "description": "反映问题",
                                             "reporter": {"name": "欧阳娜娜", "phone": "13812345678",
                                                          "id_no": "370202199301095153"}}}
    bad = json.loads(json.dumps(clue))
    bad["record_id"], bad["data"]["reporter"]["id_no"] = "xs-2", "370202199301095154"
    async with SupexClient(url, "amr", SECRETS["amr"]) as client:
        return await client.push([clue, bad])


async def _pull(url: str) -> list[str]:
    async with SupexClient(url, "jinan", SECRETS["jinan"]) as client:
        return [r["record_id"] for r in (await client.inbox(limit=1000))["records"]]


def test_push_survives_sigkill_and_the_log_verifies(served: Served, tmp_path: Path) -> None:
    """Records acknowledged by a 200 are there after a SIGKILL; tampering is then named by `log verify`."""
    answer = asyncio.run(_push_personal_data(served.url))
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    pushed = served.supex("push", "--connector", "dr", "--config", str(served.config),
                          str(SAMPLES / "results.gb18030.csv"))
    assert pushed.returncode == 0, pushed.stderr
    assert "accepted 12" in pushed.stdout
    before = asyncio.run(_pull(served.url))
    assert len(before) == 4  # the 3701xx rows of the sample
    served.kill()
    served.start()
    assert asyncio.run(_pull(served.url)) == before
    with urllib.request.urlopen(urllib.request.Request(
            served.url + "/v1/audit/verify", headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"})) as answer:
        assert json.loads(answer.read())["ok"] is True
    served.kill()
    verified = served.supex("log", "verify", "--config", str(served.config))
    assert verified.returncode == 0 and verified.stdout.startswith("OK")
    checkpoint = json.loads(served.supex("log", "checkpoint", "--config", str(served.config)).stdout)
    assert checkpoint["algorithm"] == "sm3" and len(checkpoint["hash"]) == 64
    mark = checkpoint["checkpoint"]
    assert served.supex("log", "verify", "--config", str(served.config), "--checkpoint", mark).returncode == 0
    with sqlite3.connect(tmp_path / "supex.db") as db:  # remove the tail: the tree, grown by it, tells
        db.execute("DELETE FROM exchange_log WHERE seq >= ?", (checkpoint["seq"] - 1,))
    truncated = served.supex("log", "verify", "--config", str(served.config))
    assert truncated.returncode == 1 and "removed at the tail" in truncated.stdout
    truncated = served.supex("log", "verify", "--config", str(served.config), "--checkpoint", mark)
    assert truncated.returncode == 1 and f"BROKEN at seq {checkpoint['seq'] - 1}" in truncated.stdout
    with sqlite3.connect(tmp_path / "supex.db") as db:
        db.execute("UPDATE exchange_log SET at = at || 'x' WHERE seq = 7")  # a record's outcome entry
    broken = served.supex("log", "verify", "--config", str(served.config))
    assert broken.returncode == 1 and "seq 7" in broken.stdout
    log = served.log.read_text()
    assert not any(secret in log for secret in SECRETS.values())
    assert "13812345678" not in log and "370202199301095153" not in log and "370202199301095154" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line["event"] == "request" and len(line["request_id"]) == 32 for line in lines)


def test_log_query_export_and_push_exit_codes(served: Served, tmp_path: Path) -> None:
    """`log query` filters, `log export` streams every entry with its hashes, and `push` exits 1 on rejections."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"record_type": "inspection", "record_id": "x-1", "op": "upsert"}]), encoding="utf-8")
    pushed = served.supex("push", "--connector", "amr", "--config", str(served.config), str(bad))
    assert pushed.returncode == 1
    assert "record 0 (id x-1): " in pushed.stderr and "rejected 1" in pushed.stdout
    assert "[required]" in pushed.stderr and "/ " in pushed.stderr  # each error: its pointer, its message, its code
    served.kill()
    query = served.supex("log", "query", "--config", str(served.config), "--event", "rejected", "--json")
    (entry,) = [json.loads(line) for line in query.stdout.splitlines()]
    assert entry["record_id"] == "x-1" and entry["reason"] == "required"
    export = served.supex("log", "export", "--config", str(served.config))
    entries = [json.loads(line) for line in export.stdout.splitlines()]
    assert [(e["seq"], e["event"]) for e in entries] == [(1, "received"), (2, "rejected"), (3, "audit_query"),
                                                        (4, "audit_query")]  # each command's look, logged
    assert entries[2]["reason"] == "cli log query event=rejected" and entries[2]["counterpart"].startswith("cli:")
    assert entries[1]["prev_hash"] == entries[0]["hash"]


def test_push_names_each_file_it_could_not_push_and_exits_2(served: Served, tmp_path: Path) -> None:
    """A workbook for a CSV connector, a missing file and a file of no known format are each named on
    standard error; the readable file beside them is still pushed; the command exits 2."""
    workbook = tmp_path / "export.xlsx"
    workbook.write_bytes(b"PK\x03\x04 a workbook")
    notes = tmp_path / "export.txt"
    notes.write_text("抽查任务编号\n", encoding="utf-8")
    pushed = served.supex("push", "--connector", "dr", "--config", str(served.config), str(workbook),
                          str(tmp_path / "nosuch.csv"), str(notes), str(SAMPLES / "results.gb18030.csv"))
    assert pushed.returncode == 2, pushed.stderr
    assert "Traceback" not in pushed.stderr
    assert f"{workbook}: 网关拒收此文件 / the gateway refused this file: 415" in pushed.stderr
    assert "nosuch.csv: 文件不存在 / no such file" in pushed.stderr
    assert "cannot tell the format from the name 'export.txt'" in pushed.stderr
    assert "accepted 12" in pushed.stdout and "3 files not pushed" in pushed.stderr


def test_pull_writes_the_inbox_as_ndjson_and_acknowledges_only_with_ack(served: Served) -> None:
    pushed = served.supex("push", "--connector", "dr", "--config", str(served.config),
                          str(SAMPLES / "results.gb18030.csv"))
    assert pushed.returncode == 0, pushed.stderr
    pull = ("pull", "--connector", "jinan", "--config", str(served.config))
    first = served.supex(*pull)
    ids = [json.loads(line)["record_id"] for line in first.stdout.splitlines()]
    assert first.returncode == 0 and len(ids) == 4 and "not acknowledged" in first.stderr
    assert [json.loads(line)["record_id"] for line in served.supex(*pull, "--ack").stdout.splitlines()] == ids
    after = served.supex(*pull)
    assert after.returncode == 0 and after.stdout == "" and "0 records" in after.stderr


def test_check_config_fails_with_the_key_and_line(tmp_path: Path) -> None:
    """An unknown key makes check-config exit 2 naming the key and its line."""
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG_TEXT.replace('log_hash = "sm3"', 'log_hash = "sm3"\nlog_hsh = "x"'), encoding="utf-8")
    result = subprocess.run([SUPEX, "check-config", str(config)], env=ENV, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2
    assert "bad.toml:6:" in result.stderr and "log_hsh" in result.stderr


class _Counting(http.server.BaseHTTPRequestHandler):
    """A push consumer's endpoint that keeps the record ids it is sent."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received.extend(r["record_id"] for r in json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


def test_pending_push_deliveries_survive_a_kill_and_go_out_after_restart(tmp_path: Path) -> None:
    """Records accepted while their push consumer is down are delivered, once each, after the
    gateway is killed (SIGKILL) and started again and the consumer comes back."""
    receiver_port = _free_port()
    gateway = Served(tmp_path)
    text = gateway.config.read_text(encoding="utf-8") + (
        '\n[[connector]]\nid = "county"\nname = "历下区"\ndepartment_code = "11370000FE1KM2U90Y"\n'
        f'region_code = "370102"\nconsumes = ["inspection"]\ndelivery = "push"\n'
        f'endpoint = "http://127.0.0.1:{receiver_port}/in"\n')
    gateway.config.write_text(text, encoding="utf-8")
    env_secret = "SUPEX_SECRET_COUNTY"
    os.environ[env_secret] = "secret-county-0123456789ab"
    ENV[env_secret] = os.environ[env_secret]
    try:
        gateway.start()
        records = [dict(example_record("inspection"),
                        record_id=f"kill-{n}") for n in range(5)]
        for record in records:
            record.pop("version", None)

        async def push() -> dict[str, object]:
            async with SupexClient(gateway.url, "amr", SECRETS["amr"]) as client:
                return await client.push(records)

        assert asyncio.run(push())["accepted"] == 5
        gateway.kill()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), _Counting)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            gateway.start()
            deadline = time.monotonic() + 30
            while len(_Counting.received) < 5 and time.monotonic() < deadline:
                time.sleep(0.1)  # waiting for the deliveries to arrive, not timing them
        finally:
            server.shutdown()
        assert sorted(_Counting.received) == [f"kill-{n}" for n in range(5)]
    finally:
        gateway.kill()
        del os.environ[env_secret], ENV[env_secret]


def _second(served: Served, folder: Path, *, port: int, store: str) -> subprocess.CompletedProcess[str]:
    config = folder / "second.toml"
    config.write_text(CONFIG_TEXT.replace("127.0.0.1:8440", f"127.0.0.1:{port}").replace(
        'store = "sqlite:///supex.db"', f'store = "{store}"'), encoding="utf-8")
    return subprocess.run([SUPEX, "serve", "--config", str(config)], env=ENV, capture_output=True, text=True,
                          check=False, timeout=60)


def test_a_second_gateway_on_a_taken_port_or_a_served_store_is_refused(served: Served, tmp_path: Path) -> None:
    """One line naming what is taken, exit 2, no traceback, and never "serving"; the first gateway
    goes on serving."""
    other = tmp_path / "other"
    other.mkdir()
    taken = _second(served, other, port=served.port, store="sqlite:///elsewhere.db")
    assert taken.returncode == 2 and f"cannot listen on 127.0.0.1:{served.port}" in taken.stderr
    held = _second(served, other, port=_free_port(), store=f"sqlite:///{tmp_path / 'supex.db'}")
    assert held.returncode == 2 and "is in use by another gateway (host" in held.stderr
    assert served.proc is not None and f"pid {served.proc.pid}" in held.stderr
    for answer in (taken, held):
        assert "Traceback" not in answer.stderr and "serving on" not in answer.stderr
        said = [line for line in answer.stderr.splitlines() if line.startswith("supex:")]
        assert len(said) == 1 and answer.stderr.strip().endswith(said[0]), answer.stderr  # the start-up log, then it
    with urllib.request.urlopen(served.url + "/healthz", timeout=5) as answer:
        assert answer.status == 200
    assert served.supex("log", "verify", "--config", str(served.config)).returncode == 0  # commands still run beside it


def test_push_says_what_the_gateway_said_of_each_rejected_record(served: Served, tmp_path: Path) -> None:
    """Each rejected record with its id, the pointer and the gateway's own message (not its code
    alone); ``--json`` prints the gateway's whole answer."""
    penalty = example_record("penalty")  # amr produces inspections and clues only
    penalty["record_id"] = "not-mine-1"
    path = tmp_path / "penalty.json"
    path.write_text(json.dumps([penalty], ensure_ascii=False), encoding="utf-8")
    pushed = served.supex("push", "--connector", "amr", "--config", str(served.config), str(path))
    assert pushed.returncode == 1
    assert "(id not-mine-1): /record_type: " in pushed.stderr
    assert "the connector may not produce records of type penalty [not_permitted]" in pushed.stderr
    as_json = served.supex("push", "--connector", "amr", "--config", str(served.config), "--json", str(path))
    (answer,) = [json.loads(line) for line in as_json.stdout.splitlines() if line.startswith("{")]
    assert answer["file"] == str(path) and answer["results"][0]["errors"][0]["code"] == "not_permitted"
