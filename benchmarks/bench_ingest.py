"""Ingest throughput and latency of the full path (auth, parse, validate, durable store, log).

1. Batches: 8 concurrent client tasks in a separate process push batches of 500 standard
   `inspection` records to `supex serve`; then the same load against the "limit": a bare aiohttp
   handler that only parses the batches and writes them with one SQLite executemany per batch,
   under the same durability (WAL, synchronous=FULL). Prints records/s and the ratio.
2. Single records: 500 requests/s offered (open loop) for 10 s, before the batches and again
   right after them; prints p50/p99 latency.
3. With --million: 1,000,000 records ingested, then the gateway's resident memory.

Run: .venv/bin/python benchmarks/bench_ingest.py [--records 100000] [--million]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from _data import VALID, machine, random_uscc
from aiohttp import web

from connectors.signing import signature_headers

HERE = Path(__file__).resolve()
SECRET = "bench-secret-0123456789abcdef"
CONFIG = """
[gateway]
listen = "127.0.0.1:{port}"
store = "{store}"
log_hash = "sm3"
max_body = "16MiB"
allow_plaintext_at_rest = true  # generated test records, on a throwaway store

[[connector]]
id = "bench"
name = "bench producer"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["inspection"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


# ---- the "limit": parse and executemany, nothing else -------------------------------------------

def baseline_server(port: int, db_path: str) -> None:
    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS records (record_id TEXT, payload BLOB)")

    async def handler(request: web.Request) -> web.Response:
        records = orjson.loads(await request.read())
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO records VALUES (?, ?)", [(r["record_id"], orjson.dumps(r)) for r in records])
        db.execute("COMMIT")
        return web.json_response({"accepted": len(records)})

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/records", handler)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# ---- the client process ----------------------------------------------------------------------------

def make_records(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    base = copy.deepcopy(VALID["inspection"])
    del base["version"]
    out = []
    for n in range(count):
        rec = copy.deepcopy(base)
        rec["record_id"] = f"bench-{seed}-{n}"
        rec["data"]["subject"]["cert_no"] = random_uscc(rng)
        out.append(rec)
    return out


def signed(path: str, body: bytes) -> dict[str, str]:
    return {**signature_headers("bench", SECRET, "POST", path, body), "Content-Type": "application/json"}


async def batches(urls: list[str], count: int, batch: int, tasks: int, seed: int) -> dict[str, float]:
    """Push ``count`` records in batches from ``tasks`` concurrent tasks, round-robin over ``urls``."""
    records = make_records(count, seed)
    bodies = [orjson.dumps(records[i:i + batch]) for i in range(0, count, batch)]
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for n, body in enumerate(bodies):
        queue.put_nowait((urls[n % len(urls)], body))
    accepted = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while not queue.empty():
            url, body = queue.get_nowait()
            async with session.post(url + "/v1/records", data=body, headers=signed("/v1/records", body)) as answer:
                result = await answer.json()
                if answer.status != 200:
                    raise SystemExit(f"push failed: {answer.status} {result}")
                accepted += int(result["accepted"])

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=tasks)) as session:
        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(session) for _ in range(tasks)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"records": count, "accepted": accepted, "seconds": elapsed, "per_second": count / elapsed,
            "client_cpu_us": cpu / count * 1e6}


async def singles(url: str, rate: int, seconds: int, seed: int) -> dict[str, float]:
    # everything is built and signed before the clock starts (well within the 300 s window), and the
    # client's own garbage collector is kept out of the timed run: it measures the server, not itself
    requests = [(body, signed("/v1/records", body)) for body in
                (orjson.dumps([r]) for r in make_records(rate * seconds, seed))]
    latencies: list[float] = []
    gc.collect()
    gc.freeze()
    gc.disable()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        async def one(request: tuple[bytes, dict[str, str]], due: float) -> None:
            body, headers = request
            async with session.post(url + "/v1/records", data=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise SystemExit(f"push failed: {answer.status}")
            latencies.append(time.perf_counter() - due)  # from when it was due: no coordinated omission

        start = time.perf_counter()
        pending = []
        for n, request in enumerate(requests):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(request, due)))
        await asyncio.gather(*pending)
    gc.enable()
    latencies.sort()
    return {"requests": len(latencies), "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000, "max_ms": latencies[-1] * 1000}


def client_main(args: argparse.Namespace) -> None:
    if args.mode == "batches":
        result = asyncio.run(batches([args.url], args.records, 500, 8, args.seed))
    else:
        result = asyncio.run(singles(args.url, 500, args.seconds, args.seed))
    print(json.dumps(result))


def run_client(url: str, mode: str, records: int, seed: int, seconds: int = 10) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(HERE), "--client", mode, "--url", url, "--records", str(records),
                          "--seed", str(seed), "--seconds", str(seconds)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---- orchestration --------------------------------------------------------------------------------

def start_gateway(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = folder / "supex.toml"
    config.write_text(CONFIG.format(port=port, store=f"sqlite:///{folder / 'supex.db'}"))
    env = {**os.environ, "SUPEX_SECRET_BENCH": SECRET}
    supex = Path(sys.executable).parent / "supex"
    proc = subprocess.Popen([str(supex), "serve", "--config", str(config)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except BaseException:
        stop(proc)  # nothing it started is left running
        raise
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended already
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds spent so far by the gateway's process and by its worker processes together."""
    main = psutil.Process(pid)
    spent = {"serving process": sum(main.cpu_times()[:2]), "worker processes": 0.0}
    for child in main.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            spent["worker processes"] += sum(child.cpu_times()[:2])
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="also ingest 1,000,000 records and report memory")
    parser.add_argument("--seconds", type=int, default=10, help="seconds of each single-record phase (default 10)")
    parser.add_argument("--client", choices=["batches", "singles"], dest="mode", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-server", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(int(args.baseline_server[0]), args.baseline_server[1])
        return
    if args.mode:
        client_main(args)
        return
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        proc, url = start_gateway(Path(folder))
        try:
            run_client(url, "batches", min(5_000, args.records), 100)  # warm up
            single = run_client(url, "singles", 0, 2, args.seconds)
            before = cpu_seconds(proc.pid)
            full = run_client(url, "batches", args.records, 1)
            server_cpu = {name: (spent - before.get(name, 0.0)) / args.records * 1e6
                          for name, spent in cpu_seconds(proc.pid).items()}
            loaded = run_client(url, "singles", 0, 4, args.seconds)  # right after the batches: the WAL copied back
            if args.million:
                done = full["records"] + 5_000 + single["requests"] + loaded["requests"]
                run_client(url, "batches", 1_000_000 - int(done), 3)
                rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            stop(proc)
        port = free_port()
        limit_proc = subprocess.Popen([sys.executable, str(HERE), "--baseline-server", str(port),
                                       str(Path(folder) / "limit.db")], start_new_session=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}", limit_proc)
            run_client(f"http://127.0.0.1:{port}", "batches", min(5_000, args.records), 100)
            limit = run_client(f"http://127.0.0.1:{port}", "batches", args.records, 1)
        finally:
            stop(limit_proc)
    ratio = full["per_second"] / limit["per_second"]
    print(f"batches of 500, 8 tasks: supex {full['per_second']:,.0f} records/s (target >= 15,000) | "
          f"limit (parse + executemany) {limit['per_second']:,.0f} records/s | supex/limit {ratio:.0%} (target >= 50%)")
    shares = ", ".join(f"{name} {us:.1f}" for name, us in server_cpu.items())
    print(f"CPU a record during the batches (µs): {shares}; the load generator {full['client_cpu_us']:.1f} "
          f"(limit's load generator {limit['client_cpu_us']:.1f}); the machine has {os.cpu_count()} cores")
    for name, result in (("", single), (" right after the batches", loaded)):
        print(f"single records at 500/s offered{name}: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
              f"(target <= 20 ms), max {result['max_ms']:.1f} ms over {result['requests']:,} requests")
    if args.million:
        print(f"gateway resident memory after 1,000,000 records: {rss:.0f} MiB (target <= 200 MB)")


if __name__ == "__main__":
    main()
