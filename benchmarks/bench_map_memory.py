"""Resident memory of `supex map` over a large NDJSON file: it must stay flat (under 150 MB for
1 GB), because files are streamed record by record.

Run: .venv/bin/python benchmarks/bench_map_memory.py [--size-mb 1024] [--keep]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil
from _data import internet_plus_rows, machine


def write_file(path: Path, size: int) -> int:
    """Write Internet+ rows as NDJSON until ``size`` bytes; returns the row count."""
    rows = [orjson.dumps(r) + b"\n" for r in internet_plus_rows(5000)]
    written = count = 0
    with path.open("wb") as out:
        while written < size:
            line = rows[count % len(rows)]
            out.write(line)
            written += len(line)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    path = Path(tempfile.gettempdir()) / f"supex-bench-{args.size_mb}mb.ndjson"
    if not path.exists() or path.stat().st_size < args.size_mb * 2**20:
        count = write_file(path, args.size_mb * 2**20)
    else:
        count = sum(1 for _ in path.open("rb"))
    supex = Path(sys.executable).parent / "supex"
    command = [str(supex), "map", "--mapping", "internet_plus.check_action", "--validate", str(path)]
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink, tempfile.TemporaryFile() as report:
        proc = subprocess.Popen(command, stdout=sink, stderr=report)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        report.seek(0, os.SEEK_END)
        report.seek(max(0, report.tell() - 4096))
        stderr = report.read().decode(errors="replace")
    elapsed = time.perf_counter() - start
    summary = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    print(f"file: {path.stat().st_size / 2**20:,.0f} MiB, {count:,} rows; exit {proc.returncode}; {summary[:80]}")
    print(f"supex map --validate: {count / elapsed:,.0f} records/s, peak RSS {peak / 2**20:.1f} MiB (target < 150 MiB)")
    if not args.keep:
        path.unlink()


if __name__ == "__main__":
    main()
