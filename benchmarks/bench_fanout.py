"""Fan-out: records pushed into `supex serve` and delivered to three push consumers, end to end,
with the same records then delivered by pull to a fourth consumer in the same run.

The producer pushes 100,000 standard `inspection` records (8 tasks, batches of 500) from a
client process; three receivers in another process count what reaches them. The clock runs
from the first push to the last record received by the third consumer: every record routed,
decided, logged, pushed (signed, batches of 500) and logged as delivered, three times. Then a
pull consumer drains its inbox (pages of 1,000, acknowledged) and the same figure is taken.

Run: .venv/bin/python benchmarks/bench_fanout.py [--records 100000] [--log-hash sha256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from _data import machine
from aiohttp import web
from bench_ingest import CONFIG as BENCH_CONFIG
from bench_ingest import SECRET, free_port, run_client, stop, wait_ready

from connectors.signing import signature_headers

HERE = Path(__file__).resolve()
CONSUMERS = ("push-a", "push-b", "push-c")
CONFIG = BENCH_CONFIG + """
[[connector]]
id = "puller"
name = "pull consumer"
department_code = "11370000AL7LL93D6K"
region_code = "370000"
consumes = ["inspection"]
"""
PUSHER = """
[[connector]]
id = "{id}"
name = "{id}"
department_code = "11370000B7HR4HLY1F"
region_code = "370000"
consumes = ["inspection"]
delivery = "push"
endpoint = "http://127.0.0.1:{port}/{id}"
push_batch = 500
"""


def receivers(port: int) -> None:
    """Three endpoints that count the records they receive; GET /count tells."""
    counts = dict.fromkeys(CONSUMERS, 0)
    last = [0.0]

    async def take(request: web.Request) -> web.Response:
        body = await request.read()
        counts[request.match_info["name"]] += body.count(b'"record_id"')
        last[0] = time.time()
        return web.json_response({"ok": True})

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"counts": counts, "last": last[0]})

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/{name}", take)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _wait_receivers(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit("the receivers did not start")
        try:
            counts(port)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the receivers did not answer")


def counts(port: int) -> tuple[dict[str, int], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as answer:
        data = json.loads(answer.read())
    return data["counts"], data["last"]


async def drain(url: str, secret: str) -> int:
    """Pull everything shared with ``puller``, acknowledging each page; the number of records."""
    total = 0
    async with aiohttp.ClientSession() as session:
        while True:
            path = "/v1/inbox?limit=1000"
            headers = signature_headers("puller", secret, "GET", path, b"")
            async with session.get(url + path, headers=headers) as answer:
                page = await answer.json()
            if not page["records"]:
                return total
            total += len(page["records"])
            body = json.dumps({"cursor": page["next"]}).encode()
            headers = {**signature_headers("puller", secret, "POST", "/v1/inbox/ack", body),
                       "Content-Type": "application/json"}
            async with session.post(url + "/v1/inbox/ack", data=body, headers=headers) as answer:
                await answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--log-hash", choices=["sm3", "sha256"], default="sm3", help="the exchange log's hash")
    parser.add_argument("--receivers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receivers:
        receivers(args.receivers)
        return
    print(f"machine: {machine()}; exchange log hash {args.log_hash}")
    with tempfile.TemporaryDirectory() as folder:
        rport, port = free_port(), free_port()
        config = Path(folder) / "supex.toml"
        config.write_text(CONFIG.format(port=port, store=f"sqlite:///{Path(folder) / 'supex.db'}").replace(
                          'log_hash = "sm3"', f'log_hash = "{args.log_hash}"')
                          + "".join(PUSHER.format(id=c, port=rport) for c in CONSUMERS))
        sink = subprocess.Popen([sys.executable, str(HERE), "--receivers", str(rport)], start_new_session=True)
        env = {**os.environ, **{f"SUPEX_SECRET_{c.upper().replace('-', '_')}": SECRET
                                for c in ("bench", "puller", *CONSUMERS)}}
        supex = Path(sys.executable).parent / "supex"
        gateway = subprocess.Popen([str(supex), "serve", "--config", str(config)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, gateway)
            _wait_receivers(rport, sink)
            started = time.time()
            ingest = run_client(url, "batches", args.records, 1)
            deadline = started + 600
            while time.time() < deadline:
                got, last = counts(rport)
                if all(n >= args.records for n in got.values()):
                    break
                time.sleep(0.2)
            else:
                raise SystemExit(f"not all delivered in 600 s: {got}")
            push_seconds = last - started
            pull_started = time.perf_counter()
            pulled = asyncio.run(drain(url, SECRET))
            pull_seconds = time.perf_counter() - pull_started
        finally:
            stop(gateway)
            stop(sink)
    deliveries = args.records * len(CONSUMERS)
    print(f"ingest of {args.records:,} records (8 tasks, batches of 500): {ingest['per_second']:,.0f} records/s, "
          "routing to 4 consumers included")
    print(f"push fan-out to {len(CONSUMERS)} consumers, end to end from the first push: {deliveries:,} deliveries in "
          f"{push_seconds:.1f} s = {deliveries / push_seconds:,.0f} deliveries/s (target >= 10,000)")
    print(f"pull of the same records by a fourth consumer (pages of 1,000, acknowledged): {pulled:,} records in "
          f"{pull_seconds:.1f} s = {pulled / pull_seconds:,.0f} records/s")


if __name__ == "__main__":
    main()
