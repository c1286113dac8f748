"""The exchange log at scale: `supex log verify` speed, and the review console's page times, with
1,000,000 entries stored.

A log of realistic entries is built once (20 connectors; stored, routed, delivered and received
entries, a few percent denied, rejected, overdue and failed deliveries, SM3 chain). Then:
- verification of the whole chain, as `supex log verify` runs it (stretches checked side by side in
  one process a core) and in one process, for comparison;
- the console: an auditor signs in and each page is requested 20 times (after the start-up
  verification has finished); the median and the slowest are printed. Target: <= 200 ms.

Run: .venv/bin/python benchmarks/bench_log.py [--entries 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from _data import machine

from gateway.config import load_config
from gateway.exchange_log import LogEntry
from gateway.http.app import create_app
from gateway.store.sqlite import SQLiteStore

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))
from tests.conftest import served_in_thread  # noqa: E402 - the test helper that serves an app from a thread

TOKEN = "bench-auditor-token-0123456789"
CONFIG = f"""
[gateway]
store = "sqlite:///log.db"
log_hash = "sm3"

[[auditor]]
name = "sec"
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
"""
CONNECTORS = [f"dept-{n:02d}" for n in range(20)]


def build(path: Path, count: int) -> None:
    """``count`` entries of a province's traffic, appended in batches as the gateway appends them."""
    store = SQLiteStore(str(path), log_hash="sm3")
    at = "2026-11-26T04:00:00.000+00:00"
    batch: list[LogEntry] = []
    for n in range(count):
        producer, consumer = CONNECTORS[n % 7], CONNECTORS[7 + n % 13]
        kind = n % 100
        record = {"record_type": "inspection", "record_id": f"r-{n // 4}", "source": producer, "version": 1}
        if kind < 25:
            entry = LogEntry("stored", at, connector=producer, digest="ab" * 32, batch_id=f"b-{n // 500}", **record)
        elif kind < 50:
            entry = LogEntry("routed", at, connector=consumer, counterpart=producer, rule="to-cities",
                             purpose="属地监管", reason="subscription", **record)
        elif kind < 75:
            entry = LogEntry("delivered", at, connector=consumer, counterpart=producer, rule="to-cities",
                             purpose="属地监管", fields=("action_name", "subject.name", "result"),
                             masked=("inspectors.name",), digest="cd" * 32, **record)
        elif kind < 95:
            entry = LogEntry("received", at, connector=producer, source=producer, batch_id=f"b-{n // 500}",
                             reason="500 records")
        elif kind < 97:
            entry = LogEntry("denied", at, connector=consumer, counterpart=producer,
                             reason="subscription: conditional sharing and no rule names this consumer", **record)
        elif kind < 98:
            entry = LogEntry("rejected", at, connector=producer, reason="uscc_checksum", **record)
        elif kind < 99:
            entry = LogEntry("overdue", at, connector=consumer, counterpart=producer, rule="to-cities", **record)
        else:
            entry = LogEntry("delivery_failed", at, connector=consumer, counterpart=producer,
                             reason="the consumer answered 503", **record)
        batch.append(entry)
        if len(batch) == 10_000:
            store.log.append(batch)
            batch = []
    if batch:
        store.log.append(batch)
    store.close()


def verify(path: Path, processes: int | None) -> tuple[bool, int, float]:
    store = SQLiteStore(str(path), log_hash="sm3")
    started = time.perf_counter()
    outcome = list(store.log.verify(processes=processes))[-1]
    seconds = time.perf_counter() - started
    store.close()
    return outcome.ok, outcome.entries, seconds


def console_times(folder: Path, rounds: int) -> dict[str, list[float]]:
    config = load_config(folder / "supex.toml", environ={})
    app = create_app(config, deliver=False)
    pages = ["/console/", "/console/events", "/console/events?event=denied", "/console/events?event=overdue",
             "/console/events?connector=dept-03", "/console/events?rule=to-cities&connector=dept-19",
             "/console/events?record_id=r-123456", "/console/trail?source=dept-00&record_id=r-123456",
             "/console/events?since=2026-11-26T04:00:00&until=2026-11-26T05:00:00", "/console/problems",
             "/console/events?before=500000"]
    with served_in_thread(app) as url:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        login = opener.open(url + "/console/login").read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf
        opener.open(url + "/console/login", urllib.parse.urlencode({"csrf": csrf[1], "token": TOKEN}).encode())
        deadline = time.monotonic() + 300
        while "chain ok" not in opener.open(url + "/console/").read().decode():  # the start-up verification
            if time.monotonic() > deadline:
                raise SystemExit("the console's start-up verification did not find the log intact")
            time.sleep(0.5)
        times: dict[str, list[float]] = {page: [] for page in pages}
        for _ in range(rounds):
            for page in pages:
                started = time.perf_counter()
                opener.open(url + page).read()
                times[page].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the log in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="supex-bench-log-"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "supex.toml").write_text(CONFIG, encoding="utf-8")
    database = folder / "log.db"
    print(f"machine: {machine()}")
    if not database.exists():
        started = time.perf_counter()
        build(database, args.entries)
        print(f"built {args.entries:,} log entries in {time.perf_counter() - started:.1f} s")
    for processes, label in ((None, "side by side, one process a core"), (1, "in one process")):
        ok, entries, seconds = verify(database, processes)
        print(f"log verify ({label}): {entries:,} entries in {seconds:.2f} s = {entries / seconds:,.0f} entries/s"
              f"{' (target >= 300,000)' if processes is None else ''}{'' if ok else ' — CHAIN BROKEN'}")
    times = console_times(folder, args.rounds)
    print(f"console pages with {args.entries:,} entries, {args.rounds} requests each (target <= 200 ms):")
    for page, samples in times.items():
        print(f"  {page:<70} median {statistics.median(samples) * 1000:6.1f} ms   slowest "
              f"{max(samples) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
