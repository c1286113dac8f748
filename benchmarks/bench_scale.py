"""Scale-out: ingest records/s with one and with two `supex serve` instances on one PostgreSQL
database, and with one instance on SQLite for reference, in one run.

Each setup starts on a fresh store. A client process (8 tasks) pushes batches of 500 standard
`inspection` records, round-robin over the instances, after a warm-up. Besides records/s it
prints the CPU time each part used (gateways, PostgreSQL, the client) over the wall time: when
the machine's cores are all busy, a second instance cannot add throughput, and this shows where
they went. After each run the stored versions are counted: every record once.

Run: .venv/bin/python benchmarks/bench_scale.py [--records 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from _data import machine
from bench_ingest import CONFIG, SECRET, batches, free_port, stop, wait_ready

from gateway.store import open_store

HERE = Path(__file__).resolve()
BATCH, TASKS = 500, 8  # records a push carries by default; concurrent client requests


# ---- the client process ----------------------------------------------------------------------------

def run_client(urls: list[str], records: int, seed: int, batch: int) -> tuple[dict[str, float], float]:
    """The client's figures and the CPU seconds it used."""
    command = [sys.executable, str(HERE), "--client", ",".join(urls), "--records", str(records), "--seed", str(seed),
               "--batch", str(batch)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    cpu = 0.0
    while proc.poll() is None:
        try:
            times = watched.cpu_times()
            cpu = times.user + times.system
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)  # sampling the client's CPU time while it runs
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(err[-2000:])
    return dict(json.loads(out.strip().splitlines()[-1])), cpu


# ---- the setups ------------------------------------------------------------------------------------

def cpu_seconds(processes: list[psutil.Process], *, children: bool) -> float:
    """CPU seconds used so far by ``processes`` (and the processes they started, with ``children``)."""
    total = 0.0
    for process in processes:
        try:
            family = [process, *process.children(recursive=True)] if children else [process]
            total += sum(p.cpu_times().user + p.cpu_times().system for p in family)
        except psutil.NoSuchProcess:
            continue
    return total


def postgres_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


@contextmanager
def gateways(folder: Path, store: str, count: int) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    started = []
    try:
        for n in range(count):
            port = free_port()
            config = folder / f"supex-{n}.toml"
            config.write_text(CONFIG.format(port=port, store=store))
            env = {**os.environ, "SUPEX_SECRET_BENCH": SECRET}
            proc = subprocess.Popen([str(Path(sys.executable).parent / "supex"), "serve", "--config", str(config)],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            url = f"http://127.0.0.1:{port}"
            started.append((proc, url))
            wait_ready(url, proc)
        yield started
    finally:
        for proc, _ in started:
            stop(proc)


def writer_seconds(urls: list[str]) -> tuple[float, float]:
    """Seconds the gateways at ``urls`` have waited for and held the database's one writer, summed."""
    waited = held = 0.0
    for url in urls:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
            text = answer.read().decode()
        waited += float(re.search(r"^supex_store_writer_wait_seconds_total (\S+)$", text, re.MULTILINE)[1])  # type: ignore[index]
        held += float(re.search(r"^supex_store_writer_held_seconds_total (\S+)$", text, re.MULTILINE)[1])  # type: ignore[index]
    return waited, held


def measure(name: str, folder: Path, store: str, count: int, *, records: int, batch: int) -> dict[str, Any]:
    with gateways(folder, store, count) as running:
        urls = [url for _, url in running]
        run_client(urls, 5_000, 100, batch)  # warm up: connections, prepared statements, caches
        mine = [psutil.Process(proc.pid) for proc, _ in running]
        pg = postgres_processes() if store.startswith("postgresql") else []
        gateway_before, pg_before = cpu_seconds(mine, children=True), cpu_seconds(pg, children=False)
        waited_before, held_before = writer_seconds(urls)
        result, client_cpu = run_client(urls, records, 1, batch)
        waited, held = (after - before for after, before in zip(writer_seconds(urls), (waited_before, held_before),
                                                                 strict=True))
        gateway_cpu = cpu_seconds(mine, children=True) - gateway_before
        pg_cpu = cpu_seconds(pg, children=False) - pg_before
    stored = open_store(store.removeprefix("sqlite:///"), log_hash="sm3")
    try:
        kept = stored.counts()["records"]
    finally:
        stored.close()
    wall = result["seconds"]
    return {"name": name, **result, "stored": kept, "expected": records + 5_000,
            "cpu": {"gateways": gateway_cpu / wall, "postgres": pg_cpu / wall, "client": client_cpu / wall},
            "writer": {"held": held / wall, "waited": waited / wall}}


def fresh_database(admin_url: str) -> tuple[str, str]:
    name = f"supex_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    return name, admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server where the benchmark may create databases")
    parser.add_argument("--batch", type=int, default=BATCH, help="records a push carries (default: 500)")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(batches(args.client.split(","), args.records, args.batch, TASKS, args.seed))))
        return
    print(f"machine: {machine()}; batches of {args.batch}, {TASKS} client tasks")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name, count in (("PostgreSQL, 1 instance", 1), ("PostgreSQL, 2 instances", 2)):
            database, url = fresh_database(args.postgres)
            try:
                results.append(measure(name, Path(folder), url, count, records=args.records, batch=args.batch))
            finally:
                drop_database(args.postgres, database)
        results.append(measure("SQLite, 1 instance", Path(folder), f"sqlite:///{folder}/supex.db", 1,
                               records=args.records, batch=args.batch))
    for r in results:
        cpu = r["cpu"]
        print(f"{r['name']:24} {r['per_second']:>9,.0f} records/s  ({r['records']:,} in {r['seconds']:.1f} s; "
              f"stored {r['stored']:,} of {r['expected']:,}) | cores busy: gateways {cpu['gateways']:.2f}, "
              f"PostgreSQL {cpu['postgres']:.2f}, client {cpu['client']:.2f} of {os.cpu_count()} | writer held "
              f"{r['writer']['held']:.0%} of the time, waited for {r['writer']['waited']:.0%}")
    one, two = results[0]["per_second"], results[1]["per_second"]
    print(f"2 instances / 1 instance on PostgreSQL: {two / one:.2f}x (target >= 1.6x where the machine allows)")
    print(f"PostgreSQL 1 instance / SQLite: {one / results[2]['per_second']:.2f}x")
    held = results[0]["writer"]["held"]
    print(f"the one writer's ceiling on PostgreSQL at this batch size: {one / held:,.0f} records/s "
          f"(1 instance's rate / the share of time it held the writer): the most any number of instances "
          f"could ingest here with cores to spare")


if __name__ == "__main__":
    main()
