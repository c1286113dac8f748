"""The verifiable log at scale: a log of 1,000,000 entries appended (its Merkle tree grown with them),
then verified whole as `supex log verify` does it (every entry's hash and the tree's root, in one
process a core, and in one process); inclusion proofs served (read from the stored tree) and
checked; consistency proofs; checkpoints signed with Ed25519 and SM2.

Targets: inclusion proofs >= 20,000/s; verifying 1,000,000 entries <= 3 s.

Run: .venv/bin/python benchmarks/bench_proofs.py [--entries 1000000] [--hash sm3|sha256] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from _data import machine

from gateway.exchange_log import LogEntry
from gateway.merkle import hash_function
from gateway.signing import LogKey, checkpoint_text, open_signed
from gateway.store.sqlite import SQLiteStore
from gateway.verify_receipt import VerifierKey, verify_inclusion

BATCH = 10_000


def build(path: Path, entries: int, algorithm: str) -> SQLiteStore:
    """A store whose log holds ``entries`` realistic entries (stored, then routed twice)."""
    store = SQLiteStore(str(path), log_hash=algorithm)
    have = store.log.head()[0]
    at = store.now()
    started = time.perf_counter()
    while have < entries:
        batch = []
        for n in range(have, min(entries, have + BATCH)):
            if n % 3 == 0:
                batch.append(LogEntry("stored", at, connector="amr", source="amr", record_type="inspection",
                                      record_id=f"in-{n}", version=1, batch_id=f"b{n // 500}", digest=f"{n:064x}"))
            else:
                batch.append(LogEntry("routed", at, connector=f"city-{n % 16}", counterpart="amr", source="amr",
                                      record_type="inspection", record_id=f"in-{n - n % 3}", version=1,
                                      rule="province-wide", purpose="监管", reason="jurisdiction"))
        store.log.append(batch)
        have += len(batch)
    if have and time.perf_counter() - started > 0.01:
        print(f"appended {entries:,} entries, tree grown with them: {entries / (time.perf_counter() - started):,.0f} "
              "entries/s (one process, transactions of 10,000)")
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--hash", choices=["sm3", "sha256"], default="sm3")
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log in this folder")
    args = parser.parse_args()
    print(f"machine: {machine()}; log hash {args.hash}")
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        store = build(folder / f"proofs-{args.hash}.db", args.entries, args.hash)
        size = store.tree.size()

        for processes, label in ((None, "side by side, a process a core"), (1, "one process")):
            started = time.perf_counter()
            outcome = list(store.log.verify(processes=processes))[-1]
            seconds = time.perf_counter() - started
            if not outcome.ok or outcome.root != store.tree.root(size):
                raise SystemExit(f"the log does not verify: {outcome}")
            print(f"verify {size:,} entries and the tree's root ({label}): {seconds:.2f} s "
                  f"({size / seconds:,.0f} entries/s; target <= 3 s for 1,000,000)")

        rng = random.Random(1)
        for label in ("the first pass, nothing kept in memory yet", "a second pass, other entries"):
            seqs = [rng.randint(1, size) for _ in range(args.proofs)]
            started = time.perf_counter()
            proofs = [store.tree.inclusion(seq, size) for seq in seqs]
            served = time.perf_counter() - started
            print(f"inclusion proofs served from the stored tree ({label}): {len(seqs) / served:,.0f}/s "
                  f"({len(proofs[0][1])} hashes each; target >= 20,000/s)")
        h, root = hash_function(args.hash), store.tree.root(size)
        started = time.perf_counter()
        assert all(verify_inclusion(h, seq - 1, size, leaf, path, root) for seq, (leaf, path) in zip(seqs, proofs,
                                                                                                   strict=True))
        print(f"inclusion proofs checked (RFC 9162 verifier): {len(seqs) / (time.perf_counter() - started):,.0f}/s")
        pairs = [sorted(rng.sample(range(1, size + 1), 2)) for _ in range(2_000)]
        started = time.perf_counter()
        for first, second in pairs:
            store.tree.consistency(first, second)
        print(f"consistency proofs served: {len(pairs) / (time.perf_counter() - started):,.0f}/s")
        for algorithm in ("ed25519", "sm2"):
            key = LogKey.new("bench.example/log", algorithm)
            verifier = VerifierKey(key.verifier)
            rounds = 50 if algorithm == "sm2" else 500
            started = time.perf_counter()
            notes = [key.sign_note(checkpoint_text(key.name, size, root, dt.datetime.now(dt.UTC))) for _ in
                     range(rounds)]
            signing = (time.perf_counter() - started) / rounds
            started = time.perf_counter()
            for note in notes:
                open_signed(note, verifier)
            print(f"checkpoint signed with {algorithm}: {signing * 1000:.2f} ms, checked: "
                  f"{(time.perf_counter() - started) / rounds * 1000:.2f} ms")
        store.close()


if __name__ == "__main__":
    main()
