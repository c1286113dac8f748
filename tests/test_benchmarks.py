"""Every benchmark of ``make bench``, run at a tiny size: it runs to its end and leaves no process
of its own behind, so that none can rot unseen until someone needs its figure again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends import postgres_unavailable

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
TINY: dict[str, list[str]] = {
    "bench_validate.py": ["--records", "200"],
    "bench_map.py": ["--records", "200", "--sheet-rows", "200"],
    "bench_map_memory.py": ["--size-mb", "1"],
    "bench_policy.py": [],
    "bench_ingest.py": ["--records", "1000", "--seconds", "1"],
    "bench_fanout.py": ["--records", "1000"],
    "bench_store_path.py": [],
    "bench_log.py": ["--entries", "2000", "--rounds", "1"],
    "bench_proofs.py": ["--entries", "3000", "--proofs", "200"],
    "bench_scale.py": ["--records", "1000"],
    "crash.py": ["--records", "500", "--kills", "1", "--no-postgres"],
    "outage.py": ["--phase", "1"],
}
NEEDS_POSTGRES = {"bench_scale.py"}


def test_every_benchmark_of_make_bench_has_its_smoke_run() -> None:
    made = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert {line.split("benchmarks/", 1)[1] for line in made.splitlines() if "benchmarks/" in line} == set(TINY)


def _ours(script: Path, before: set[int]) -> list[int]:
    """Processes that were not there before ``script`` started and that it left: its own helpers
    (receivers, clients, baselines) and the gateways it served with."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in before:
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            helper = any(w.endswith(script.name.encode()) for w in words)
            gateway = b"serve" in words and any(w.endswith(b"supex") for w in words)
            if helper or gateway:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_benchmark_runs_to_its_end_and_leaves_nothing_running(name: str) -> None:
    if name in NEEDS_POSTGRES and (why := postgres_unavailable()):
        pytest.skip(why)
    script = BENCHMARKS / name
    before = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    env = {**os.environ, "BATCHES": "1"}
    done = subprocess.run([sys.executable, str(script), *TINY[name]], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    left = _ours(script, before)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip(), "it printed no figure"
    assert left == []
