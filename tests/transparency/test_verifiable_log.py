"""The verifiable log end to end, through the gateway's HTTP interface: receipts a department checks
without supex, every entry's inclusion proof against a signed checkpoint and the consistency of
checkpoints (the tree's roots computed independently by pymerkle), tampering and a rewritten,
re-signed tail caught by the verifier and by a witness holding an older checkpoint."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import io
import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymerkle import InmemoryTree

import gateway.store.log as log_module
from connectors import SupexClient
from gateway.cli import main
from gateway.cli.transparency import EXIT_ALERT, _metrics, check_bundle, witness
from gateway.config import Config, load_config
from gateway.exceptions import Refusal
from gateway.exchange_log import GENESIS, LogEntry, chain_hash, row_entry
from gateway.flow.checkpoints import Checkpoints, held_to_tree
from gateway.http.app import create_app
from gateway.http.context import CHECKPOINTS, STORE
from gateway.merkle import hash_function
from gateway.signing import LogKey, checkpoint_text, cosign, open_signed, verify_with, witness_verifier
from gateway.store import open_store
from gateway.store.sqlite import MIGRATIONS
from gateway.store.tree import SignedCheckpoint
from gateway.terminal import EXIT_INVALID
from gateway.verify_receipt import (
    ReceiptError,
    VerifierKey,
    canonical_entry,
    check_receipt,
    verify_consistency,
    verify_inclusion,
)
from tests.backends import Backend
from tests.gateway.conftest import AUDITOR_TOKEN, CONFIG_TEXT, NOW, SECRETS, Signed, inspection

VERIFIER = Path(__file__).resolve().parents[2] / "gateway" / "verify_receipt.py"


def _config(folder: Path, log_hash: str = "sha256", signature: str = "ed25519", witness_key: str = "") -> Config:
    text = CONFIG_TEXT.replace('log_hash = "sm3"', f'log_hash = "{log_hash}"')
    text += f'\n[log]\norigin = "supex.test/exchange-log"\nsignature = "{signature}"\n'
    if witness_key:
        text += f'\n[[log.witness]]\nname = "witness.test/w1"\nkey = "{witness_key}"\n'
    (folder / "supex.toml").write_text(text, encoding="utf-8")
    return load_config(folder / "supex.toml", environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()})


async def _gateway(config: Config) -> AsyncIterator[Signed]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, clock=lambda: NOW, deliver=False)))
    await client.start_server()
    try:
        yield Signed(client)
    finally:
        await client.close()


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Signed]:
    async for signed in _gateway(_config(tmp_path)):
        yield signed


async def _auditor(gw: Signed, path: str) -> Any:
    status, body = await gw.call("GET", path, bearer=AUDITOR_TOKEN)
    assert status == 200, body
    return body


async def _key(gw: Signed) -> VerifierKey:
    status, body = await gw.call("GET", "/.well-known/supex/log-key")
    assert status == 200
    return VerifierKey(body["verifier_key"])


def _entries(store_path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(store_path) as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(exchange_log)")]
        rows = db.execute(f"SELECT {', '.join(columns)} FROM exchange_log ORDER BY seq").fetchall()
    return [{**row_entry(r).content(), "prev_hash": r[-2], "hash": r[-1]} for r in rows]


async def test_a_producers_receipt_verifies_with_the_standard_library_alone(gw: Signed, tmp_path: Path) -> None:
    status, answer = await gw.push("amr", [inspection(1), inspection(2)])
    assert status == 200
    seqs = [r["seq"] for r in answer["results"]]
    status, receipt = await gw.call("GET", "/v1/records/in-2/receipt", connector="amr")
    assert status == 200 and receipt["entry"]["seq"] == seqs[1] and receipt["entry"]["event"] == "stored"
    assert "data" not in json.dumps(receipt["entry"])  # metadata only
    key = await _key(gw)
    vkey = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]

    def verified(receipt: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """The shipped verifier run as a department would: isolated, no site-packages, no supex."""
        (tmp_path / "receipt.json").write_text(json.dumps(receipt), encoding="utf-8")
        return subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), str(tmp_path / "receipt.json"),
                               "--key", vkey], capture_output=True, text=True, check=False)

    checked = verified(receipt)
    assert checked.returncode == 0 and "verified: entry" in checked.stdout, checked.stdout + checked.stderr
    refused = verified({**receipt, "entry": {**receipt["entry"], "record_id": "in-3"}})
    assert refused.returncode == 1 and "NOT VERIFIED" in refused.stdout
    # another connector has no receipt of it; the consumer has its own, of the entry that shared it
    assert (await gw.call("GET", "/v1/records/in-2/receipt", connector="qingdao"))[0] == 404
    status, theirs = await gw.call("GET", "/v1/records/in-2/receipt?as=consumer", connector="jinan")
    assert status == 200 and (theirs["entry"]["event"], theirs["entry"]["connector"]) == ("routed", "jinan")
    check_receipt(theirs, key)
    page = (await gw.inbox("jinan"))[1]
    assert page["receipts"][-1] == {"record_id": "in-2", "version": 1, "seq": theirs["entry"]["seq"]}
    assert [r["record_id"] for r in page["receipts"]] == [r["record_id"] for r in page["records"]]


@pytest.mark.parametrize("mangle", [
    lambda r: [r],  # not an object
    lambda r: {k: v for k, v in r.items() if k != "log_hash"},
    lambda r: {**r, "log_hash": ["sha256"]},
    lambda r: {**r, "entry": "in-1"},
    lambda r: {**r, "entry": {**r["entry"], "seq": float("inf")}},
    lambda r: {**r, "inclusion_proof": {**r["inclusion_proof"], "audit_path": ["zz", None]}},
    lambda r: {**r, "inclusion_proof": {**r["inclusion_proof"], "tree_size": -1}},
    lambda r: {**r, "checkpoint": 7},
    lambda r: {**r, "origin": "another.test/log"},  # what the receipt says of itself must be what is signed
])
async def test_a_mangled_receipt_is_refused_with_a_reason_by_either_verifier(
        gw: Signed, tmp_path: Path, mangle: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever a receipt file holds, both verifiers say why it does not verify: never a traceback."""
    await gw.push("amr", [inspection(1)])
    receipt = (await gw.call("GET", "/v1/records/in-1/receipt", connector="amr"))[1]
    vkey = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
    path = tmp_path / "mangled.json"
    path.write_text(json.dumps(mangle(receipt)), encoding="utf-8")  # inf: written as Infinity, as JSON is not
    alone = subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), str(path), "--key", vkey],
                           capture_output=True, text=True, check=False)
    assert alone.returncode in (1, 2) and "Traceback" not in alone.stderr, alone.stderr
    assert "NOT VERIFIED" in alone.stdout or "cannot read" in alone.stderr
    assert main(["log", "check-receipt", str(path), "--key", vkey]) in (1, 2)
    said = capsys.readouterr()
    assert "NOT VERIFIED" in said.out or "receipt" in said.err
    assert "unexpected error" not in said.err


def _both_verifiers(receipt: Path, vkey: str, *extra: str) -> list[tuple[int, str]]:
    """The exit status and what was said, of the shipped verifier and of `supex log check-receipt`."""
    alone = subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), str(receipt), "--key", vkey, *extra],
                           capture_output=True, text=True, check=False)
    assert "Traceback" not in alone.stderr, alone.stderr
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["log", "check-receipt", str(receipt), "--key", vkey, *extra])
    return [(alone.returncode, alone.stdout + alone.stderr), (code, out.getvalue())]


async def test_a_receipt_is_held_to_an_older_checkpoint_saved_by_any_editor(gw: Signed, tmp_path: Path) -> None:
    """A department keeps a checkpoint (saved, say, by Notepad: a byte-order mark, Windows line
    ends); a later receipt holds only if its log extends that one by the consistency proof."""
    await gw.push("amr", [inspection(n) for n in range(3)])
    older = await gw.client.app[CHECKPOINTS].sign()
    assert older is not None
    await gw.push("amr", [inspection(n) for n in range(3, 7)])
    newer = await gw.client.app[CHECKPOINTS].sign()
    assert newer is not None and newer.size > older.size
    receipt = (await gw.call("GET", "/v1/records/in-5/receipt", connector="amr"))[1]
    assert receipt["inclusion_proof"]["tree_size"] == newer.size
    proof = await _auditor(gw, f"/v1/audit/proof/consistency?first={older.size}&second={newer.size}")
    vkey = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
    (tmp_path / "receipt.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(receipt).encode())
    (tmp_path / "older.txt").write_bytes(("\ufeff" + older.note).replace("\n", "\r\n").encode())
    (tmp_path / "proof.json").write_text(json.dumps(proof), encoding="utf-8")
    extra = ("--older", str(tmp_path / "older.txt"), "--proof", str(tmp_path / "proof.json"))
    for code, said in _both_verifiers(tmp_path / "receipt.json", vkey, *extra):
        assert code == 0 and "verified" in said, said
    assert proof["proof"], "a proof between two different sizes holds hashes"
    proof["proof"][0] = "00" * 32
    (tmp_path / "proof.json").write_text(json.dumps(proof), encoding="utf-8")
    for code, said in _both_verifiers(tmp_path / "receipt.json", vkey, *extra):
        assert code == 1 and "does not extend" in said, said


@pytest.mark.parametrize(("text", "why"), [
    ('{"seq": 1, "seq": 2}', "appears twice"),  # which one a reader sees depends on the reader: refused
    ("[" * 100_000, "nests too deeply"),
    ("{}{}", "Extra data"),
])
async def test_a_receipt_file_that_cannot_be_read_one_way_is_refused_naming_why(
        gw: Signed, tmp_path: Path, text: str, why: str) -> None:
    vkey = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
    (tmp_path / "receipt.json").write_text(text, encoding="utf-8")
    for code, said in _both_verifiers(tmp_path / "receipt.json", vkey):
        assert code == 2 and why in said, said


async def test_an_archived_entry_written_otherwise_than_as_archived_is_refused(gw: Signed, tmp_path: Path) -> None:
    """An archive's line naming a field twice would verify by the value most readers take (the
    last) while another reader shows the first: any line not as the archive wrote it is refused."""
    await gw.push("amr", [inspection(1)])
    checkpoint = await gw.client.app[CHECKPOINTS].sign()
    assert checkpoint is not None
    config, folder = str(tmp_path / "supex.toml"), tmp_path / "archive"
    assert main(["log", "archive", "--config", config, "--until", str(checkpoint.size), str(folder)]) == 0
    bundle = next(folder.iterdir())
    assert check_bundle(bundle).until == checkpoint.size
    entries = bundle / "entries.ndjson"
    lines = entries.read_bytes().splitlines()
    stored = next(n for n, line in enumerate(lines) if b'"stored"' in line)
    lines[stored] = b'{"record_id":"in-forged",' + lines[stored][1:]
    entries.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ReceiptError, match=f"entry {stored + 1} is not as the archive wrote it"):
        check_bundle(bundle)


async def test_every_entry_is_proved_in_a_signed_tree_whose_root_pymerkle_computes_alike(
        gw: Signed, tmp_path: Path) -> None:
    await gw.push("amr", [inspection(n) for n in range(7)])
    first = await _auditor(gw, "/v1/audit/checkpoint")
    await gw.push("amr", [inspection(n) for n in range(7, 20)])
    await gw.push("amr", [inspection(3)])  # a duplicate: an entry too
    second = await _auditor(gw, "/v1/audit/checkpoint")
    key = await _key(gw)
    old, new = open_signed(first["checkpoint"], key), open_signed(second["checkpoint"], key)
    assert old.size < new.size
    entries = _entries(tmp_path / "supex.db")[:new.size]
    theirs = InmemoryTree(algorithm="sha256")
    for entry in entries:
        theirs.append_entry(canonical_entry(entry))
    assert theirs.get_root(new.size) == new.root and theirs.get_root(old.size) == old.root
    h = hash_function("sha256")
    for entry in entries:
        proof = await _auditor(gw, f"/v1/audit/proof/inclusion?seq={entry['seq']}&tree_size={new.size}")
        assert verify_inclusion(h, entry["seq"] - 1, new.size, bytes.fromhex(proof["leaf_hash"]),
                                [bytes.fromhex(p) for p in proof["audit_path"]], new.root)
        assert proof["leaf_hash"] == theirs.get_leaf(entry["seq"]).hex()
    consistency = await _auditor(gw, f"/v1/audit/proof/consistency?first={old.size}&second={new.size}")
    assert verify_consistency(h, old.size, new.size, old.root, new.root,
                              [bytes.fromhex(p) for p in consistency["proof"]])
    for bad in ("seq=0", f"seq={new.size + 1}&tree_size={new.size}", "seq=1&tree_size=999999"):
        assert (await gw.call("GET", f"/v1/audit/proof/inclusion?{bad}", bearer=AUDITOR_TOKEN))[0] in (400, 404)
    assert (await gw.call("GET", f"/v1/audit/proof/consistency?first={new.size}&second={old.size}",
                          bearer=AUDITOR_TOKEN))[0] == 400


async def test_a_proof_asked_of_an_empty_log_says_it_is_empty(gw: Signed) -> None:
    status, body = await gw.call("GET", "/v1/audit/proof/consistency?first=1&second=1", bearer=AUDITOR_TOKEN)
    assert status == 400 and "the log is empty" in body["error"]["message"], body
    status, body = await gw.call("GET", "/v1/audit/checkpoint", bearer=AUDITOR_TOKEN)
    assert status == 404 and "the log is empty" in body["error"]["message"], body
    # what is missing said in both languages, each in its own words
    status, body = await gw.call("GET", "/v1/audit/proof/inclusion?seq=999", bearer=AUDITOR_TOKEN)
    assert (status, body["error"]["message"]) == (404, "没有第 999 条日志条目 / no log entry 999"), body
    status, body = await gw.call("GET", "/v1/records/in-9/receipt?as=consumer", connector="jinan")
    assert (status, body["error"]["message"]) == (404, "没有你作为接收方的记录 'in-9' 的回执 / no receipt of record "
                                                       "'in-9' for you as its consumer"), body


@pytest.mark.parametrize(("path", "named"), [
    ("/v1/audit/receipt", "seq"), ("/v1/audit/proof/inclusion", "seq"),
    ("/v1/audit/proof/inclusion?seq=3&tree_size=2", "seq"),
    ("/v1/audit/proof/consistency?first=2", "second"), ("/v1/audit/proof/consistency?first=3&second=2", "first"),
    ("/v1/audit/proof/inclusion?seq=1&tree_size=99", "tree size"), ("/v1/audit/checkpoint?size=-1", "size"),
])
async def test_a_proof_asked_without_what_it_needs_is_a_400_naming_it(gw: Signed, path: str, named: str) -> None:
    await gw.push("amr", [inspection(1), inspection(2)])
    status, body = await gw.call("GET", path, bearer=AUDITOR_TOKEN)
    assert (status, body["error"]["code"]) == (400, "bad_parameter") and named in body["error"]["message"], body


async def test_a_connector_gets_proofs_of_its_own_entries_only(gw: Signed) -> None:
    _status, answer = await gw.push("amr", [inspection(1)])
    seq = answer["results"][0]["seq"]
    assert (await gw.call("GET", f"/v1/audit/proof/inclusion?seq={seq}", connector="amr"))[0] == 200
    assert (await gw.call("GET", f"/v1/audit/proof/inclusion?seq={seq}", connector="qingdao"))[0] == 404
    assert (await gw.call("GET", "/v1/audit/checkpoint", connector="qingdao"))[0] == 200


def _rewrite_tail(store_path: Path, config: Config, seq: int) -> None:
    """What an operator with the database and the log key could do: change entry ``seq``, rebuild
    the tree from the changed entries and sign a new checkpoint over it."""
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE exchange_log SET reason = 'rewritten' WHERE seq = ?", (seq,))
        db.execute("DELETE FROM log_tree")
        db.execute("DELETE FROM log_tiles")
        db.execute("DELETE FROM checkpoints")
        db.execute("UPDATE progress SET seq = 0 WHERE name = 'tree'")
        columns = [c[1] for c in db.execute("PRAGMA table_info(exchange_log)")]
        h = hash_function(config.gateway.log_hash)
        prev = "0" * 64
        for row in db.execute(f"SELECT {', '.join(columns)} FROM exchange_log ORDER BY seq").fetchall():
            entry = row_entry(row)
            leaf = h(b"\x00" + entry.canonical(entry.seq)).hex()
            db.execute("UPDATE exchange_log SET hash = ?, prev_hash = ? WHERE seq = ?", (leaf, prev, entry.seq))
            prev = leaf
    store = open_store(str(store_path), log_hash=config.gateway.log_hash)
    store.tree.catch_up()
    store.close()


async def test_a_witness_cosigns_consistent_checkpoints_and_catches_a_rewritten_re_signed_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    witness_key = LogKey.new("witness.test/w1", "ed25519")
    witness_key.save(tmp_path / "witness-key")
    config = _config(tmp_path, witness_key=witness_verifier(witness_key))
    args = argparse.Namespace(key=tmp_path / "witness-key", log_hash="sha256", token_env="SUPEX_TEST_WITNESS",
                              state=tmp_path / "witness", every=0.0, once=True)
    monkeypatch.setenv("SUPEX_TEST_WITNESS", AUDITOR_TOKEN)
    async for gw in _gateway(config):
        args.gateway = str(gw.client.make_url("/"))
        args.log_key = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
        loop = asyncio.get_running_loop()
        await gw.push("amr", [inspection(n) for n in range(5)])
        assert await loop.run_in_executor(None, witness, args) == 0
        await gw.push("amr", [inspection(n) for n in range(5, 9)])
        assert await loop.run_in_executor(None, witness, args) == 0  # consistent: cosigned again
        published = await _auditor(gw, "/v1/audit/checkpoint")
        assert published["cosignatures"] == 1 and "\u2014 witness.test/w1 " in published["cosigned"]
        cosigned_size = published["tree_size"]
        # a cosignature of anyone else, or of another checkpoint, is not taken
        other = LogKey.new("witness.test/w1", "ed25519")
        forged = cosign(other, published["checkpoint"], dt.datetime.now(dt.UTC))
        status, _ = await gw.call("POST", "/v1/audit/cosignatures", json.dumps(
            {"tree_size": cosigned_size, "cosignature": forged}).encode(), bearer=AUDITOR_TOKEN)
        assert status == 400
        for size, line in ((-1, forged), (10**30, forged), (cosigned_size, "x"), (cosigned_size, forged + " x"),
                           (cosigned_size, forged[:2] + "A" * 5000)):  # no size a tree has, no signature line
            status, body = await gw.call("POST", "/v1/audit/cosignatures", json.dumps(
                {"tree_size": size, "cosignature": line}).encode(), bearer=AUDITOR_TOKEN)
            assert (status, body["error"]["code"]) == (400, "bad_parameter"), (size, line[:20], body)
    _rewrite_tail(tmp_path / "supex.db", config, 3)
    async for gw in _gateway(config):  # the same store served again, on another port
        args.gateway = str(gw.client.make_url("/"))
        await gw.push("amr", [inspection(20)])
        assert await asyncio.get_running_loop().run_in_executor(None, witness, args) == EXIT_ALERT
        evidence = list((tmp_path / "witness").glob("evidence-*"))
        assert len(evidence) == 1 and (evidence[0] / "cosigned-before.txt").exists()
        assert "supex_witness_inconsistent_total 1" in (tmp_path / "witness" / "witness.prom").read_text()


@pytest.mark.parametrize("answer", [b"[1, 2]", b'{"checkpoint": 5}', b'{"proof": "x"}', b"not json",
                                    b'{"checkpoint": "' + b"x" * (2 << 20) + b'"}'])
async def test_a_witness_refuses_a_gateway_that_answers_nonsense(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer: bytes) -> None:
    """A gateway answering what no gateway would (no object, the wrong types, megabytes) is
    refused with a reason and exit 1; nothing is cosigned, nothing is kept."""
    async def checkpoint(_request: web.Request) -> web.Response:
        return web.Response(body=answer)

    app = web.Application()
    app.router.add_get("/v1/audit/checkpoint", checkpoint)
    server = TestServer(app)
    await server.start_server()
    witness_key = LogKey.new("witness.test/w1", "ed25519")
    witness_key.save(tmp_path / "witness-key")
    args = argparse.Namespace(key=tmp_path / "witness-key", log_hash="sha256", token_env="SUPEX_TEST_WITNESS",
                              state=tmp_path / "witness", every=0.0, once=True, gateway=str(server.make_url("/")),
                              log_key=LogKey.new("supex.test/exchange-log", "ed25519").verifier)
    monkeypatch.setenv("SUPEX_TEST_WITNESS", AUDITOR_TOKEN)
    try:
        assert await asyncio.get_running_loop().run_in_executor(None, witness, args) == EXIT_INVALID
    finally:
        await server.close()
    assert "did not answer usefully" in capsys.readouterr().err or answer == b'{"checkpoint": 5}'
    assert not (tmp_path / "witness" / "cosigned.txt").exists()


def test_a_witness_given_no_verifier_key_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    LogKey.new("witness.test/w1", "ed25519").save(tmp_path / "witness-key")
    monkeypatch.setenv("SUPEX_WITNESS_TOKEN", AUDITOR_TOKEN)
    assert main(["witness", "--gateway", "http://127.0.0.1:9", "--key", str(tmp_path / "witness-key"),
                 "--log-key", "supex.test/log+00", "--state", str(tmp_path / "w"), "--once"]) == 2
    said = capsys.readouterr().err
    assert "--log-key" in said and "not a verifier key" in said and "unexpected" not in said, said


async def test_a_watching_witness_rides_out_an_outage_and_a_refusal_stops_it(
        gw: Signed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A gateway down or overloaded (503, no answer) is polled again, counted in the metrics, and
    the checkpoint cosigned once it answers; with --once, or on a refusal (401), the witness exits 1."""
    await gw.push("amr", [inspection(1)])
    signed = (await _auditor(gw, "/v1/audit/checkpoint"))["checkpoint"]
    answers = iter([web.Response(status=503, text="busy"), None, web.json_response({"checkpoint": signed})])

    async def checkpoint(request: web.Request) -> web.StreamResponse:
        answer = next(answers)
        if answer is None:  # the gateway goes away before it answers
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError
        return answer

    async def cosignature(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/v1/audit/checkpoint", checkpoint)
    app.router.add_post("/v1/audit/cosignatures", cosignature)
    server = TestServer(app)
    await server.start_server()
    LogKey.new("witness.test/w1", "ed25519").save(tmp_path / "witness-key")
    args = argparse.Namespace(key=tmp_path / "witness-key", log_hash="sha256", token_env="SUPEX_TEST_WITNESS",
                              state=tmp_path / "witness", every=5.0, once=False, gateway=str(server.make_url("/")),
                              log_key=(await _key(gw)).text)
    monkeypatch.setenv("SUPEX_TEST_WITNESS", AUDITOR_TOKEN)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # a third poll after two failed ones, then the loop is left
        waits.append(seconds)
        if len((tmp_path / "witness" / "cosigned.txt").read_text() if (tmp_path / "witness" / "cosigned.txt")
               .exists() else "") > 0:
            raise KeyboardInterrupt

    loop = asyncio.get_running_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            await loop.run_in_executor(None, partial(witness, args, sleep=sleep))
        assert waits == [5.0, 5.0, 5.0]
        assert "cannot be reached now, trying again in 5 s" in capsys.readouterr().err
        metrics = (tmp_path / "witness" / "witness.prom").read_text()
        assert "supex_witness_unreachable_total 2" in metrics and "supex_witness_gateway_up 1" in metrics
        answers = iter([web.Response(status=503, text="busy")])
        assert await loop.run_in_executor(None, witness, argparse.Namespace(**{**vars(args), "once": True})) \
            == EXIT_INVALID
        said = capsys.readouterr().err  # polled once: no promise of another poll
        assert "cannot be reached now: HTTP Error 503" in said and "trying again" not in said, said
        answers = iter([web.Response(status=401, text="no")])
        assert await loop.run_in_executor(None, witness, args) == EXIT_INVALID  # watched, yet refused: stop
        assert "did not answer usefully: HTTP Error 401" in capsys.readouterr().err
    finally:
        await server.close()


def test_the_witness_metrics_survive_a_file_changed_by_hand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Counters carry over from the metrics file; a figure that is none (the file edited, cut off)
    starts again from 0, saying so, instead of stopping the witness."""
    (tmp_path / "witness.prom").write_bytes(b"supex_witness_inconsistent_total abc\nsupex_witness_unreachable_total 4\n"
                                            b"supex_witness_cosigned_size 1e999\n\xff\n")
    _metrics(tmp_path, None, 1)
    _metrics(tmp_path, None, 0, unreachable=1)
    text = (tmp_path / "witness.prom").read_text()
    assert "supex_witness_inconsistent_total 1\n" in text and "supex_witness_unreachable_total 5\n" in text
    assert "supex_witness_gateway_up 0\n" in text and "supex_witness_cosigned_size" not in text
    assert "not a figure; supex_witness_inconsistent_total starts from 0" in capsys.readouterr().err
    _metrics(tmp_path, 12, 0)
    assert "supex_witness_cosigned_size 12\n" in (tmp_path / "witness.prom").read_text()


async def test_altering_one_entry_breaks_its_receipt_and_verification(gw: Signed, tmp_path: Path) -> None:
    await gw.push("amr", [inspection(n) for n in range(4)])
    _, receipt = await gw.call("GET", "/v1/records/in-1/receipt", connector="amr")
    key = await _key(gw)
    check_receipt(receipt, key)
    seq = receipt["entry"]["seq"]
    with sqlite3.connect(tmp_path / "supex.db") as db:
        db.execute("UPDATE exchange_log SET digest = 'f' || substr(digest, 2) WHERE seq = ?", (seq,))
    _, tampered = await gw.call("GET", "/v1/records/in-1/receipt", connector="amr")
    with pytest.raises(ReceiptError, match="not in the signed tree"):
        check_receipt(tampered, key)
    _status, verdict = await gw.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN)
    assert verdict["ok"] is False and verdict["first_bad_seq"] == seq


async def test_sm2_and_sm3_receipts_check_with_supex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, log_hash="sm3", signature="sm2")
    async for gw in _gateway(config):
        await gw.push("amr", [inspection(1)])
        receipt = (await gw.call("GET", "/v1/records/in-1/receipt", connector="amr"))[1]
        vkey = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
    assert VerifierKey(vkey).algorithm == "sm2"
    check_receipt(receipt, VerifierKey(vkey), hash_function("sm3"), verify_with)
    (tmp_path / "r.json").write_text(json.dumps(receipt), encoding="utf-8")
    assert main(["log", "check-receipt", str(tmp_path / "r.json"), "--key", vkey]) == 0
    size = receipt["inclusion_proof"]["tree_size"]
    receipt["checkpoint"] = receipt["checkpoint"].replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    (tmp_path / "r.json").write_text(json.dumps(receipt), encoding="utf-8")
    assert main(["log", "check-receipt", str(tmp_path / "r.json"), "--key", vkey]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out


async def test_archives_verify_by_themselves_and_chain(gw: Signed, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    await gw.push("amr", [inspection(n) for n in range(6)])
    checkpoint = await gw.client.app[CHECKPOINTS].sign()
    assert checkpoint is not None
    config = str(tmp_path / "supex.toml")
    vkey = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
    assert main(["log", "archive", "--config", config, "--until", "5", str(tmp_path / "archive")]) == 0
    assert main(["log", "archive", "--config", config, "--until", str(checkpoint.size), str(tmp_path / "archive")]) == 0
    bundles = sorted((tmp_path / "archive").iterdir())
    assert [b.name for b in bundles] == ["log-000000000001-000000000005",
                                         f"log-000000000006-{checkpoint.size:012d}"]
    for bundle in bundles:
        assert main(["log", "check-archive", str(bundle), "--key", vkey]) == 0
    entries = bundles[1] / "entries.ndjson"
    lines = entries.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace('"stored"', '"rejected"', 1) if '"stored"' in lines[0] else lines[0].replace(
        '"received"', '"rejected"', 1)
    entries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["log", "check-archive", str(bundles[1]), "--key", vkey]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    # a bundle holding what no bundle holds is refused as unreadable, naming it (exit 2), never a crash
    manifest = json.loads((bundles[0] / "manifest.json").read_text(encoding="utf-8"))
    for name, text in (("manifest.json", json.dumps({**manifest, "first": 1e400})),
                       ("manifest.json", "[]"), ("entries.ndjson", "[1,2]\n"), ("entries.ndjson", '{"seq":1}\n')):
        if name == "entries.ndjson":
            (bundles[0] / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (bundles[0] / name).write_text(text, encoding="utf-8")
        assert main(["log", "check-archive", str(bundles[0]), "--key", vkey]) == 2, text
        assert "cannot read the archive" in capsys.readouterr().err


def _before_the_tree(path: Path, entries: list[LogEntry], algorithm: str) -> str:
    """A store at the migration before the tree, holding ``entries`` hash-chained; the last hash."""
    prev = GENESIS
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for number, script in enumerate(MIGRATIONS[:9], 1):
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (?)", (number,))
        for seq, entry in enumerate(entries, 1):
            digest = chain_hash(algorithm, prev, entry, seq)
            db.execute("INSERT INTO exchange_log (seq, at, event, counterpart, fields, masked, reason, prev_hash, "
                       "hash) VALUES (?, ?, ?, ?, '', '', ?, ?, ?)",
                       (seq, entry.at, entry.event, entry.counterpart, entry.reason, prev, digest))
            prev = digest
    return prev


def test_a_log_written_before_the_tree_gets_it_and_keeps_verifying(tmp_path: Path) -> None:
    """A store at the migration before the tree, its entries hash-chained: opened now, its tree is
    built, it verifies, and new entries are leaves linked after the chained ones."""
    path = tmp_path / "old.db"
    entries = [LogEntry("config_changed", "2026-11-01T00:00:00.000+00:00", counterpart="ops", reason=f"n{seq}")
               for seq in range(1, 6)]
    prev = _before_the_tree(path, entries, "sm3")
    store = open_store(str(path), log_hash="sm3")
    assert store.tree.size() == 5 and store.log.chained() == 5
    store.log.append([LogEntry("audit_query", store.now(), counterpart="sec")])
    outcome = list(store.log.verify(processes=1))[-1]
    assert outcome.ok and outcome.entries == 6 and outcome.root == store.tree.root(6)
    with sqlite3.connect(path) as db:  # the first leaf links to the last chained entry
        assert db.execute("SELECT prev_hash FROM exchange_log WHERE seq = 6").fetchone()[0] == prev
    with sqlite3.connect(path) as db:
        db.execute("UPDATE exchange_log SET reason = 'x' WHERE seq = 2")
    assert list(store.log.verify(processes=1))[-1].first_bad_seq == 2
    store.close()


def test_the_log_key_is_created_shown_and_rotated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    path = str(tmp_path / "supex.toml")
    assert main(["keys", "create", "--config", path]) == 0
    assert (tmp_path / "var" / "log-key").stat().st_mode & 0o777 == 0o600
    assert main(["keys", "create", "--config", path]) == 2  # never over an existing key
    capsys.readouterr()
    assert main(["keys", "show", "--config", path]) == 0
    first = capsys.readouterr().out.strip()
    assert VerifierKey(first).name == "supex.test/exchange-log"
    store = open_store(config.store_path(), log_hash="sha256")  # a checkpoint signed with the first key
    store.log.append([LogEntry("audit_query", store.now(), counterpart="sec")])
    signer = LogKey.load(tmp_path / "var" / "log-key")
    note = signer.sign_note(checkpoint_text(signer.name, 1, store.tree.root(1), dt.datetime.now(dt.UTC)))
    assert store.tree.keep_checkpoint(SignedCheckpoint(1, store.now(), first, note))
    store.close()
    assert main(["keys", "rotate", "--log", "--config", path]) == 0
    capsys.readouterr()
    assert main(["keys", "show", "--config", path, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["retired"] == [first] and shown["verifier_key"] != first
    store = open_store(config.store_path(), log_hash="sha256")
    assert [e.rule for e in store.log.entries() if e.event == "config_changed"] == ["log-key"]  # logged
    store.close()
    assert main(["log", "verify", "--config", path]) == 0  # signed by the key retired in the new one's favour
    # a key of another algorithm than [log] asks for is refused, naming both
    _config(tmp_path, signature="sm2")
    assert main(["check-config", "--no-secrets", path]) == 2
    assert "ed25519" in capsys.readouterr().err
    witness_key = tmp_path / "w.key"
    assert main(["keys", "create", "--witness", "witness.test/w1", "--output", str(witness_key)]) == 0
    assert "witness.test/w1+" in capsys.readouterr().out


def test_log_checkpoint_prints_the_root_and_the_signed_checkpoint(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    store = open_store(config.store_path(), log_hash="sha256")
    store.log.append([LogEntry("audit_query", store.now(), counterpart="sec") for _ in range(3)])
    root = store.tree.root(3)
    store.close()
    assert main(["log", "checkpoint", "--config", str(tmp_path / "supex.toml")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["tree_size"], printed["root"], printed["signed"]) == (3, root.hex(), None)


async def test_gateways_on_one_store_never_sign_with_two_keys(gw: Signed) -> None:
    """A second gateway with a key of its own signs nothing: it serves the log key's checkpoints,
    a receipt it cannot cover yet is a 503 to retry, and verifying with its key says why it fails."""
    app = gw.client.app
    assert app is not None
    await gw.push("amr", [inspection(1)])
    ours = await app[CHECKPOINTS].sign()
    assert ours is not None
    other = Checkpoints(app[STORE], LogKey.new("supex.test/exchange-log", "ed25519"), every=5)
    await gw.push("amr", [inspection(2)])
    assert await other.sign() == ours  # not signed: the log is the first key's
    with pytest.raises(Refusal, match="no signed checkpoint covers") as refused:
        await other.covering(ours.size + 1)
    assert refused.value.status == 503 and refused.value.retry_after == 5
    store = app[STORE].store
    outcome = list(store.log.verify(processes=1))[-1]
    assert held_to_tree(store, outcome, None).ok
    mismatch = held_to_tree(store, outcome, VerifierKey(other.key.verifier))
    assert not mismatch.ok and "copy the log key" in (mismatch.reason or "")
    assert (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"] == ours.signer


async def test_the_client_fetches_receipts_to_keep(gw: Signed) -> None:
    await gw.push("amr", [inspection(1)])
    async with SupexClient(str(gw.client.make_url("")), "amr", SECRETS["amr"], clock=lambda: NOW) as client:
        receipt = await client.receipt("in-1")
        assert receipt["entry"]["record_id"] == "in-1"
        check_receipt(receipt, await _key(gw))
    async with SupexClient(str(gw.client.make_url("")), "jinan", SECRETS["jinan"], clock=lambda: NOW) as client:
        theirs = await client.receipt("in-1", version=1, as_consumer=True)
        assert (theirs["entry"]["event"], theirs["entry"]["version"]) == ("routed", 1)


@pytest.mark.parametrize("chained", [0, 300])
def test_proofs_read_from_tiles_hold_for_every_entry(tmp_path: Path, chained: int) -> None:
    """Entries in complete tiles (of 16 and of 256 leaves) are proved from their rows, those in the
    last, incomplete ones node by node (those below level 4 made from the leaves under them);
    entries written before the tree get tiles too. Every proof holds against pymerkle's root."""
    path = tmp_path / "tiles.db"
    entries = [LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", counterpart="sec", reason=f"n{n}")
               for n in range(700)]
    if chained:  # a store at the migration before the tree, its first entries hash-chained
        _before_the_tree(path, entries[:chained], "sha256")
    store = open_store(str(path), log_hash="sha256")
    for start in range(chained, 700, 97):  # transactions that end mid-tile
        store.log.append(entries[start:min(start + 97, 700)])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM log_tiles").fetchone()[0] == 700 // 16 + 700 // 256
        # below level 4 nothing is written but to the tiles (and the leaves of chained entries)
        assert db.execute("SELECT count(*) FROM log_tree WHERE node >= 1 << 48 AND node < 4 << 48").fetchone()[0] \
            == 0
    theirs = InmemoryTree(algorithm="sha256")
    for seq, entry in enumerate(entries, 1):
        theirs.append_entry(entry.canonical(seq))
    h = hash_function("sha256")
    for size in (256, 300, 512, 700):  # the paths above the tiles, kept by size, differ by size
        root = theirs.get_root(size)
        assert store.tree.root(size) == root
        for seq in range(1, size + 1):
            leaf, proof = store.tree.inclusion(seq, size)
            assert leaf == theirs.get_leaf(seq) and verify_inclusion(h, seq - 1, size, leaf, proof, root), seq
    store.close()


def test_paths_above_the_tiles_hold_deep_in_a_larger_tree(tmp_path: Path) -> None:
    """Above the tiles of 256 leaves, each audit path is made from its parent's and kept by node and
    size: in trees of several sizes, ending on a tile's edge or past it, sampled proofs from one
    store hold against pymerkle's roots."""
    store = open_store(str(tmp_path / "deep.db"), log_hash="sha256")
    entries = [LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", reason=f"n{n}") for n in range(3_000)]
    store.log.append(entries)
    theirs = InmemoryTree(algorithm="sha256")
    for seq, entry in enumerate(entries, 1):
        theirs.append_entry(entry.canonical(seq))
    h, rng = hash_function("sha256"), random.Random(5)
    for size in (2_048, 2_049, 2_304, 2_560, 3_000, 2_048):  # the first again, its paths kept meanwhile
        root = theirs.get_root(size)
        for seq in [1, size, *rng.sample(range(1, size + 1), 150)]:
            leaf, proof = store.tree.inclusion(seq, size)
            assert verify_inclusion(h, seq - 1, size, leaf, proof, root), (seq, size)
    store.close()


def test_the_tree_and_its_tiles_hold_on_either_backend(backend: Backend) -> None:
    """The same 600 entries, appended in transactions that end mid-tile, make the same tree on
    SQLite and PostgreSQL: roots, tiles and every proof, against pymerkle."""
    store = backend.open(log_hash="sha256")
    entries = [LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", counterpart="sec", reason=f"n{n}")
               for n in range(600)]
    for start in range(0, 600, 71):
        store.log.append(entries[start:start + 71])
    assert backend.rows("SELECT count(*) FROM log_tiles")[0][0] == 600 // 16 + 600 // 256
    theirs = InmemoryTree(algorithm="sha256")
    for seq, entry in enumerate(entries, 1):
        theirs.append_entry(entry.canonical(seq))
    h = hash_function("sha256")
    root = theirs.get_root(600)
    assert store.tree.root(600) == root and list(store.log.verify(processes=1))[-1].root == root
    for seq in range(1, 601):
        leaf, proof = store.tree.inclusion(seq, 600)
        assert verify_inclusion(h, seq - 1, 600, leaf, proof, root), seq
    for first in (1, 16, 255, 256, 257, 599):
        assert verify_consistency(h, first, 600, theirs.get_root(first), root, store.tree.consistency(first, 600))
    store.close()


_TIER = 1 << 48  # a tile's id: its tier above its index; a node's id: its level above its index


@pytest.mark.parametrize(("tamper", "parameters", "first_bad"), [
    ("UPDATE log_tiles SET hashes = ? WHERE tile = 2", [bytes(30 * 32)], 33),  # a tile of 16 entries
    ("UPDATE log_tiles SET hashes = ? WHERE tile = ?", [bytes(30 * 32), _TIER | 1], 257),  # of 256
    ("DELETE FROM log_tiles WHERE tile = 5", [], 81),
    ("UPDATE log_tree SET hash = ? WHERE node = ?", [bytes(32), 4 * _TIER + 3], 49),  # entries 49-64
    ("DELETE FROM log_tree WHERE node = ?", [4 * _TIER + 3], 49),
    ("UPDATE log_tree SET hash = ? WHERE node = ?", [bytes(32), 9 * _TIER], 1),  # entries 1-512
])
def test_a_tree_altered_in_the_store_is_found_by_verification(backend: Backend, tamper: str, parameters: list[Any],
                                                              first_bad: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proofs are read from the stored tree, not from the entries: a tile or node changed or
    removed there would give proofs that fail while every entry holds; verification holds every
    stored hash to what the entries make, and names the first entry below the one altered."""
    store = backend.open(log_hash="sha256")
    for start in range(0, 600, 71):
        store.log.append([LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", counterpart="sec", reason=f"n{n}")
                          for n in range(start, min(start + 71, 600))])
    assert list(store.log.verify(processes=1))[-1].ok
    backend.execute(tamper, parameters)
    monkeypatch.setattr(log_module, "_PARALLEL_FROM", 0)  # also in worker processes, as a long log is
    for processes in (1, 2):
        found = list(store.log.verify(processes=processes))[-1]
        assert (found.ok, found.first_bad_seq) == (False, first_bad) and "the tree was altered" in str(found.reason)
    store.close()


def test_nodes_above_the_verified_stretches_are_held_to_their_children(tmp_path: Path) -> None:
    """The few nodes above what one stretch of verification makes are each the parent of the two
    below them, down to the stretches' own (here from level 6, over 64 entries, of a small log)."""
    store = open_store(str(tmp_path / "s.db"), log_hash="sha256")
    store.log.append([LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", reason=f"n{n}") for n in range(300)])
    assert store.tree.upper_differs(300, 6) is None
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE log_tree SET hash = ? WHERE node = ?", (bytes(32), 7 * _TIER + 1))  # entries 129-256
    assert store.tree.upper_differs(300, 6) == (129, "the tree's node over entries 129-256 differs from what they "
                                                "make, or is missing: proofs of them would not hold (the tree was "
                                                "altered)")
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("DELETE FROM log_tree WHERE node = ?", (6 * _TIER + 3,))  # a node itself missing: entries 193-256
    assert store.tree.upper_differs(300, 6)[0] == 193  # type: ignore[index]  # the lowest level first
    store.close()


def test_the_border_kept_in_memory_never_outlives_what_was_committed(tmp_path: Path) -> None:
    """A gateway keeps the tree's right border between its appends; after its transaction rolled
    back and another gateway appended other entries up to the same size, it reads the tree again."""
    path = str(tmp_path / "s.db")
    entries = [LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", counterpart="sec", reason=f"n{n}")
               for n in range(40)]
    store, other = open_store(path, log_hash="sha256"), open_store(path, log_hash="sha256")
    store.log.append(entries[:5])

    def rolled_back() -> None:
        with store.transaction() as db:
            store.append(db, entries[5:9])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        rolled_back()
    other.log.append(entries[10:14])  # the log reaches 9 entries again, with other content
    store.log.append(entries[14:40])  # past two tiles: parents kept from the border
    outcome = list(store.log.verify(processes=1))[-1]
    assert outcome.ok and outcome.size == 35 and held_to_tree(store, outcome, None).ok
    theirs = InmemoryTree(algorithm="sha256")
    for seq, entry in enumerate([*entries[:5], *entries[10:40]], 1):
        theirs.append_entry(entry.canonical(seq))
    assert store.tree.root(35) == other.tree.root(35) == theirs.get_root(35)
    store.close()
    other.close()


def test_entries_appended_while_the_log_is_verified_are_no_removed_tail(tmp_path: Path) -> None:
    """A busy gateway appends while its log is verified, and signs checkpoints past what was
    verified: neither is a removed or rewritten tail; a tail removed after all still is."""
    path = tmp_path / "s.db"
    store = open_store(str(path), log_hash="sha256")
    key = LogKey.new("supex.test/log", "ed25519")
    entries = [LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", counterpart="sec", reason=f"n{n}")
               for n in range(40)]
    store.log.append(entries[:20])
    outcome = list(store.log.verify(processes=1))[-1]
    store.log.append(entries[20:40])  # during the verification
    note = key.sign_note(checkpoint_text(key.name, 40, store.tree.root(40), dt.datetime.now(dt.UTC)))
    assert store.tree.keep_checkpoint(SignedCheckpoint(40, store.now(), key.verifier, note))
    held = held_to_tree(store, outcome, VerifierKey(key.verifier))
    assert held.ok, held.reason
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM exchange_log WHERE seq > 30")
    assert not held_to_tree(store, outcome, VerifierKey(key.verifier)).ok
    store.close()


@pytest.mark.parametrize("change", [
    "fields = X'00'",  # bytes where a field list belongs
    "record_id = X'696e2d31'",  # the record's id, as bytes
    "hash = 'zz'",  # no hash at all
    "prev_hash = X'00'",
    "version = 'two'",
])
async def test_an_entry_changed_to_what_no_entry_holds_is_named_by_every_reader(
        gw: Signed, tmp_path: Path, change: str) -> None:
    """A row of the log changed in the store to what the gateway never writes is no internal error:
    the receipts, the trail, the events and the export name the entry and say to verify; the other
    entries are served as before."""
    await gw.push("amr", [inspection(1), inspection(2)])
    _, receipt = await gw.call("GET", "/v1/records/in-1/receipt", connector="amr")
    seq = receipt["entry"]["seq"]
    with sqlite3.connect(tmp_path / "supex.db") as db:
        db.execute(f"UPDATE exchange_log SET {change} WHERE seq = ?", (seq,))
    for path, caller in [("/v1/records/in-1/receipt", {"connector": "amr"}),
                         (f"/v1/audit/receipt?seq={seq}", {"bearer": AUDITOR_TOKEN}),
                         ("/v1/records/in-1/trail", {"connector": "amr"}),
                         ("/v1/audit/events?record_id=in-1", {"bearer": AUDITOR_TOKEN})]:
        status, body = await gw.call("GET", path, **caller)
        if status == 500:
            assert body["error"]["code"] == "log_integrity", (path, body)
            assert f"entry {seq} " in body["error"]["message"] and "supex log verify" in body["error"]["message"]
        else:  # what the row holds read as it is, or (an id changed) not found by the id it had
            assert status == 200 or (status == 404 and "record_id" in change), (path, status, body)
    # the export gives every entry before the changed one, then a line saying where and why it stops
    response = await gw.client.get("/v1/audit/export", headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"})
    lines = [json.loads(line) for line in (await response.read()).splitlines()]
    given = [e["seq"] for e in lines if "seq" in e]
    assert response.status == 200 and given == list(range(1, len(given) + 1))
    if "error" in lines[-1]:
        assert len(given) == seq - 1 and f"entry {seq} " in lines[-1]["error"]["message"]
    # the next record's receipt, whose proof holds the changed entry's hash where its hash is changed
    status, body = await gw.call("GET", "/v1/records/in-2/receipt", connector="amr")
    assert status == 200 or (status, body["error"]["code"], "hash" in change) == (500, "log_integrity", True)
    _status, verdict = await gw.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN)
    assert verdict["ok"] is False and verdict["first_bad_seq"] == seq
