"""Entries archived and then pruned from the live store: the tree keeps every hash, so roots,
proofs (against pymerkle's), receipts issued before and the log's verification all hold; what is
pruned is only ever what verified bundles of the archive hold, older than the retention."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymerkle import InmemoryTree

import gateway.store.log as log_module
from gateway.cli import main
from gateway.exchange_log import LogEntry
from gateway.flow.checkpoints import held_to_tree
from gateway.http.context import CHECKPOINTS
from gateway.merkle import hash_function
from gateway.store import open_store
from gateway.store.sql import SQLStore
from gateway.verify_receipt import VerifierKey, check_receipt, verify_consistency, verify_inclusion
from tests.backends import Backend
from tests.gateway.conftest import AUDITOR_TOKEN, Signed, inspection
from tests.transparency.test_verifiable_log import _before_the_tree, _config, _gateway

ENTRIES = [LogEntry("audit_query", "2026-11-01T00:00:00.000+00:00", counterpart="sec", reason=f"n{n}")
           for n in range(700)]


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Signed]:
    async for signed in _gateway(_config(tmp_path)):
        yield signed


def _store(path: Path, chained: int = 0) -> SQLStore:
    if chained:  # its first entries written before the tree, hash-chained
        _before_the_tree(path, ENTRIES[:chained], "sha256")
    store = open_store(str(path), log_hash="sha256")
    for start in range(chained, 700, 97):
        store.log.append(ENTRIES[start:min(start + 97, 700)])
    return store


@pytest.mark.parametrize("chained", [0, 300])
def test_pruned_entries_leave_every_root_proof_and_verification_as_they_were(tmp_path: Path, chained: int) -> None:
    store = _store(tmp_path / "s.db", chained)
    theirs = InmemoryTree(algorithm="sha256")
    for seq, entry in enumerate(ENTRIES, 1):
        theirs.append_entry(entry.canonical(seq))
    h, root = hash_function("sha256"), theirs.get_root(700)
    assert store.log.prune(512, "log-000000000001-000000000600") == 512
    assert store.log.pruned()[0] == 512 and store.log.entry(512) is None and store.log.entry(513) is not None
    outcome = list(store.log.verify(processes=1))[-1]
    assert (outcome.ok, outcome.archived, outcome.entries, outcome.size, outcome.root) == (True, 512, 188, 700, root)
    assert held_to_tree(store, outcome, None).ok
    for size in (300, 512, 700):
        assert store.tree.root(size) == theirs.get_root(size)
    for seq in range(1, 701):
        leaf, proof = store.tree.inclusion(seq, 700)
        assert leaf == theirs.get_leaf(seq) and verify_inclusion(h, seq - 1, 700, leaf, proof, root), seq
    for first in (1, 15, 255, 256, 257, 511, 513):
        assert verify_consistency(h, first, 700, theirs.get_root(first), root, store.tree.consistency(first, 700))
    store.log.append([LogEntry("audit_query", "2026-11-02T00:00:00.000+00:00", counterpart="sec")])
    assert list(store.log.verify(processes=1))[-1].size == 701  # the log goes on from its head
    store.close()


def test_verification_after_pruning_still_catches_changes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = _store(path)
    store.log.prune(256, "b")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE exchange_log SET reason = 'x' WHERE seq = 600")
    assert list(store.log.verify(processes=1))[-1].first_bad_seq == 600
    with sqlite3.connect(path) as db:
        db.execute("UPDATE exchange_log SET reason = 'n599' WHERE seq = 600")
        db.execute("UPDATE log_pruned SET hash = ?", ("0" * 64,))  # the boundary's link forged
    assert list(store.log.verify(processes=1))[-1].first_bad_seq == 257
    store.close()
    store = _store(tmp_path / "t.db")
    store.log.prune(256, "b")
    with sqlite3.connect(tmp_path / "t.db") as db:  # more deleted than was pruned
        db.execute("DELETE FROM exchange_log WHERE seq = 257")
    assert list(store.log.verify(processes=1))[-1].first_bad_seq == 257
    store.close()


def test_pruned_logs_verify_alike_in_stretches_and_in_worker_processes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The first stretch after the pruned entries starts mid-subtree; the rest are whole ones."""
    store = _store(tmp_path / "s.db")
    root = store.tree.root(700)
    store.log.prune(256, "b")
    monkeypatch.setattr(log_module, "_VERIFY_STRETCH", 128)
    monkeypatch.setattr(log_module, "_PARALLEL_FROM", 0)
    for processes in (1, 2):
        outcome = list(store.log.verify(processes=processes))[-1]
        assert (outcome.ok, outcome.size, outcome.root) == (True, 700, root), processes
    store.close()


def test_only_whole_tiles_before_the_head_are_pruned(tmp_path: Path) -> None:
    store = _store(tmp_path / "s.db")
    for through in (300, 768, 700):
        with pytest.raises(ValueError, match="multiple of 256"):
            store.log.prune(through, "b")
    assert store.log.prune(0, "b") == 0 and store.log.pruned()[0] == 0
    store.close()


async def _prunable(gw: Signed, tmp_path: Path) -> tuple[str, int, str]:
    """A gateway's log of a few hundred entries, archived to the last checkpoint; the
    configuration's path, the checkpoint's size and the verifier key."""
    for start in range(0, 150, 50):
        status, _ = await gw.push("amr", [inspection(n) for n in range(start, start + 50)])
        assert status == 200
    checkpoint = await gw.client.app[CHECKPOINTS].sign()
    assert checkpoint is not None and checkpoint.size > 300
    config = str(tmp_path / "supex.toml")
    assert main(["log", "archive", "--config", config, "--until", str(checkpoint.size), str(tmp_path / "archive")]) == 0
    key = (await gw.call("GET", "/.well-known/supex/log-key"))[1]["verifier_key"]
    return config, checkpoint.size, key


async def test_log_prune_deletes_archived_entries_and_receipts_stay_checkable(
        gw: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, size, key = await _prunable(gw, tmp_path)
    kept = (await gw.call("GET", "/v1/records/in-1/receipt", connector="amr"))[1]  # issued before the pruning
    archive = str(tmp_path / "archive")
    capsys.readouterr()
    assert main(["log", "prune", "--config", config, "--archive", archive, "--retain-days", "0", "--dry-run"]) == 0
    assert "would prune entries 1-256" in capsys.readouterr().out
    assert main(["log", "prune", "--config", config, "--archive", archive, "--retain-days", "0"]) == 0
    assert "pruned entries 1-256" in capsys.readouterr().out
    check_receipt(kept, VerifierKey(key))  # a receipt issued before still holds by itself…
    proof = (await gw.call("GET", f"/v1/audit/proof/consistency?first={size}&second={size}", bearer=AUDITOR_TOKEN))
    assert proof[0] == 200
    # …an auditor still gets the proof of a pruned entry; its receipt is in the archive now
    seq = kept["entry"]["seq"]
    status, inclusion = await gw.call("GET", f"/v1/audit/proof/inclusion?seq={seq}&tree_size={size}",
                                      bearer=AUDITOR_TOKEN)
    assert status == 200 and inclusion["leaf_hash"] == kept["inclusion_proof"]["leaf_hash"]
    status, body = await gw.call("GET", f"/v1/audit/receipt?seq={seq}", bearer=AUDITOR_TOKEN)
    assert status == 410 and body["error"]["code"] == "archived" and "1-256" in body["error"]["message"]
    assert (await gw.call("GET", f"/v1/audit/proof/inclusion?seq={seq}", connector="amr"))[0] == 410
    status, body = await gw.call("GET", "/v1/records/in-1/receipt", connector="amr")
    assert status == 404 and "archived and pruned" in body["error"]["message"]
    status, receipt = await gw.call("GET", "/v1/audit/receipt?seq=300", bearer=AUDITOR_TOKEN)
    assert status == 200
    check_receipt(receipt, VerifierKey(key))
    capsys.readouterr()
    assert main(["log", "verify", "--config", config]) == 0
    assert "after the 256 archived and pruned" in capsys.readouterr().out
    # a head recorded back then is held to the tree's leaf of the pruned entry
    assert main(["log", "verify", "--config", config, "--checkpoint", f"{seq}:{kept['entry']['hash']}"]) == 0
    assert main(["log", "verify", "--config", config, "--checkpoint", f"{seq}:{'0' * 64}"]) == 1
    status, verdict = await gw.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN)
    assert status == 200 and verdict["ok"] and verdict["archived"] == 256
    # the archive's folder can only grow from where the store now begins
    assert main(["log", "archive", "--config", config, "--until", str(size), str(tmp_path / "elsewhere")]) == 2
    assert "were archived and pruned" in capsys.readouterr().err


async def test_log_prune_deletes_nothing_it_cannot_account_for(
        gw: Signed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, size, _ = await _prunable(gw, tmp_path)
    archive = tmp_path / "archive"

    def prune(*more: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["log", "prune", "--config", config, "--archive", str(archive), *more])
        out = capsys.readouterr()
        return code, out.out + out.err

    code, said = prune()
    assert code == 2 and "retain_days" in said  # no retention set: nothing is old enough to go
    code, said = prune("--retain-days", "36500")
    assert code == 0 and "nothing to prune" in said
    code, said = prune("--retain-days", "0", "--archive", str(tmp_path / "empty"))
    assert code == 2 and "holds no bundle" in said
    bundle = next(archive.iterdir())
    misnamed = bundle.rename(archive / "log-000000000001-000000000300")  # a name that says more than it holds
    code, said = prune("--retain-days", "0")
    assert code == 2 and "not what its name says" in said
    misnamed.rename(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    lines = (bundle / "entries.ndjson").read_text(encoding="utf-8").splitlines()
    (bundle / "entries.ndjson").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # a bundle cut short
    code, said = prune("--retain-days", "0")
    assert code == 2 and "does not verify" in said
    (bundle / "entries.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "verifier_key": "someone+00000000+AQ=="}),
                                          encoding="utf-8")
    code, said = prune("--retain-days", "0")
    assert code == 2 and ("cannot read" in said or "does not verify" in said or "not by this log's key" in said)
    store = open_store(str(tmp_path / "supex.db"), log_hash="sha256")
    assert store.log.pruned()[0] == 0 and store.log.entry(1) is not None and store.log.head()[0] >= size
    store.close()


def test_pruning_holds_on_either_backend(backend: Backend) -> None:
    store = backend.open(log_hash="sha256")
    for start in range(0, 600, 71):
        store.log.append(ENTRIES[start:min(start + 71, 600)])
    root = store.tree.root(600)
    proofs = {seq: store.tree.inclusion(seq, 600) for seq in (1, 255, 256, 257, 512, 513, 600)}
    consistency = {first: store.tree.consistency(first, 600) for first in (1, 255, 257, 511)}
    assert store.log.prune(512, "b") == 512
    outcome = list(store.log.verify(processes=1))[-1]
    assert (outcome.ok, outcome.archived, outcome.size, outcome.root) == (True, 512, 600, root)
    assert {seq: store.tree.inclusion(seq, 600) for seq in proofs} == proofs
    assert {first: store.tree.consistency(first, 600) for first in consistency} == consistency
    assert backend.rows("SELECT count(*) FROM exchange_log")[0][0] == 88
    store.close()
