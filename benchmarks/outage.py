"""A push consumer down for a while, another healthy: the healthy one's delivery latency with and
without the outage, and everything delivered to both once the first is back.

`supex serve` on SQLite with two push consumers of every record, `steady` and `down`, whose
endpoints run here. Records are pushed at a steady rate (batches of 20, ten a second) through
three phases of `--phase` seconds: both consumers up; `down` not listening (connection refused);
`down` listening again. The latency of a record at a consumer runs from the start of the push
that carried it to its arrival. Then the run waits for `down` to have everything.

Run: .venv/bin/python benchmarks/outage.py [--phase 10]
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

from _data import machine

from connectors import SupexClient
from tests.gateway.conftest import SECRETS, inspection
from tests.gateway.test_serve import ENV, Served, _free_port
from tests.reliability.crash import gateway_config

CONSUMERS = ("steady", "down")
arrivals: dict[str, dict[str, float]] = {name: {} for name in CONSUMERS}
guard = threading.Lock()


class Endpoint:
    """A consumer's endpoint on a fixed port, which can stop listening and start again."""

    def __init__(self, name: str) -> None:
        self.name, self.port = name, _free_port()
        self.server: http.server.ThreadingHTTPServer | None = None

    def up(self) -> None:
        name = self.name

        class Handler(http.server.BaseHTTPRequestHandler):
            seen: ClassVar[dict[str, float]] = arrivals[name]

            def do_POST(self) -> None:
                records = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                now = time.monotonic()
                with guard:
                    for record in records:
                        self.seen.setdefault(record["record_id"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


async def push_for(url: str, seconds: float, first: int, sent: dict[str, float]) -> int:
    """Push a batch of 20 records every 100 ms for ``seconds``; returns the next record number."""
    async with SupexClient(url, "amr", SECRETS["amr"]) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = [inspection(n) for n in range(first, first + 20)]
            started = time.monotonic()
            for record in batch:
                sent[record["record_id"]] = started
            await client.push(batch)
            first += 20
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))  # the offered rate
    return first


def latencies(consumer: str, sent: dict[str, float], ids: list[str]) -> dict[str, float]:
    with guard:
        values = sorted(arrivals[consumer][i] - sent[i] for i in ids if i in arrivals[consumer])
    return {"p50_ms": statistics.median(values) * 1000, "p99_ms": values[int(len(values) * 0.99) - 1] * 1000,
            "delivered": len(values), "of": len(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of each phase (default 10)")
    args = parser.parse_args()
    endpoints = {name: Endpoint(name) for name in CONSUMERS}
    for endpoint in endpoints.values():
        endpoint.up()
    for name in CONSUMERS:
        variable = f"SUPEX_SECRET_{name.upper()}"
        os.environ[variable] = ENV[variable] = f"secret-{name}-".ljust(28, "x")
    sent: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        gateway = Served(Path(folder))
        push = {name: f"http://127.0.0.1:{endpoint.port}/in" for name, endpoint in endpoints.items()}
        gateway.config.write_text(gateway_config(gateway.port, f"sqlite:///{folder}/outage.db", batch=500, push=push,
                                                 pull=False), encoding="utf-8")
        gateway.start()
        try:
            before_end = asyncio.run(push_for(gateway.url, args.phase, 0, sent))
            endpoints["down"].down()
            during_end = asyncio.run(push_for(gateway.url, args.phase, before_end, sent))
            endpoints["down"].up()
            back = time.monotonic()
            after_end = asyncio.run(push_for(gateway.url, args.phase, during_end, sent))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with guard:
                    if len(arrivals["down"]) >= after_end and len(arrivals["steady"]) >= after_end:
                        break
                time.sleep(0.1)  # waiting for the deliveries, not timing them
            with guard:
                caught_up = max(arrivals["down"].values()) - back
        finally:
            gateway.kill()
    ids = [f"in-{n}" for n in range(after_end)]
    phases = {"before": ids[:before_end], "during": ids[before_end:during_end], "after": ids[during_end:]}
    print(f"machine: {machine()}; {after_end:,} records in three phases of {args.phase:g} s")
    steady = {phase: latencies("steady", sent, part) for phase, part in phases.items()}
    for phase, figures in steady.items():
        print(f"steady, {phase} the outage: p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
              f"{figures['delivered']:,} of {figures['of']:,} delivered")
    ratio = steady["during"]["p50_ms"] / steady["before"]["p50_ms"]
    print(f"steady's p50 latency during / before the outage: {ratio:.2f}x (target <= 2x); p99 "
          f"{steady['during']['p99_ms'] / steady['before']['p99_ms']:.2f}x")
    with guard:
        lost = {name: len(set(ids) - set(arrivals[name])) for name in CONSUMERS}
    print(f"down: back after {args.phase:g} s away; everything it missed delivered {caught_up:.1f} s after it came "
          f"back (retries back off, and its circuit breaker waits 30 s after three failed rounds)")
    print(f"lost: steady {lost['steady']}, down {lost['down']}")
    print(json.dumps({"steady": steady, "ratio_p50": ratio, "caught_up_seconds": caught_up, "lost": lost}))


if __name__ == "__main__":
    main()
