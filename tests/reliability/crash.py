"""The crash run: a gateway SIGKILLed at random moments while clients push, then every
acknowledged record accounted for. The small run is a test (`test_crash.py`); the full one is
`benchmarks/crash.py`.

Four clients push standard `inspection` records with the supex client (its own retries, and the
batch pushed again until a 200 comes). A killer SIGKILLs the gateway when the acknowledged count
crosses points drawn at random (seeded), and starts it again. Two consumers are entitled to every
record: a push consumer (a receiver that keeps every record id and version it is sent) and a pull
consumer (whose inbox is read to the end afterwards). At the end: each acknowledged record is
stored once, each consumer has seen each acknowledged (source, record id, version), and the log
verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from connectors import SupexClient
from connectors.exceptions import GatewayUnreachableError
from gateway.store import is_postgres_url
from tests.backends import Backend
from tests.gateway.conftest import AUDITOR_TOKEN, SECRETS, inspection
from tests.gateway.test_serve import ENV, Served, _free_port

COUNTY_SECRET = "secret-county-0123456789ab"


@dataclass
class CrashFigures:
    """What a crash run pushed, killed, stored, delivered and lost."""

    records: int
    acknowledged: int
    kills: int
    push_calls: int  # client.push calls, a batch again after a failure (the client's own retries inside one)
    stored: int
    stored_twice: int
    lost_push: int
    lost_pull: int
    repeated_pushes: int  # (source, record id, version) pushed to the consumer more than once
    repeated_pulls: int
    log_verified: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON."""
        return asdict(self)


class Receiver(http.server.BaseHTTPRequestHandler):
    """A push consumer's endpoint that keeps every (source, record id, version) it is sent."""

    received: ClassVar[list[tuple[str, str, int]]] = []
    guard: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with self.guard:
            type(self).received.extend((r["source"]["connector"], r["record_id"], r["version"]) for r in body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


def gateway_config(port: int, store: str, *, batch: int, push: dict[str, str], pull: bool = True) -> str:
    """A gateway for these runs: amr produces inspections; jinan pulls them (with ``pull``), and each
    of ``push`` (id: endpoint) has them pushed, all in region 370102 or above."""
    text = f"""
[gateway]
listen = "127.0.0.1:{port}"
store = "{store}"
log_hash = "sm3"
max_records = {batch}
prepare_processes = 0
delivery_lease_seconds = 30
allow_plaintext_at_rest = true  # test records, on a throwaway store

[[auditor]]
name = "sec"
token_sha256 = "{hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest()}"

[[connector]]
id = "amr"
name = "省市场监管局"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["inspection"]
"""
    if pull:
        text += ('\n[[connector]]\nid = "jinan"\nname = "济南市监管平台"\ndepartment_code = "11370000AL7LL93D6K"\n'
                 'region_code = "370100"\nconsumes = ["inspection"]\n')
    for name, endpoint in push.items():
        text += (f'\n[[connector]]\nid = "{name}"\nname = "{name}"\ndepartment_code = "11370000FE1KM2U90Y"\n'
                 f'region_code = "370102"\nconsumes = ["inspection"]\ndelivery = "push"\nendpoint = "{endpoint}"\n'
                 'push_batch = 500\npush_timeout_seconds = 5\n')
    return text


def _stored(store: str) -> tuple[int, int]:
    """Stored versions of amr's records, and how many distinct records they are."""
    backend = Backend("postgresql", store) if is_postgres_url(store) else \
        Backend("sqlite", store.removeprefix("sqlite:///"))
    ((versions, distinct),) = backend.rows("SELECT count(*), count(DISTINCT record_id) FROM changes "
                                           "WHERE connector = 'amr'")
    return int(versions), int(distinct)


def crash_run(folder: Path, store: str, *, records: int, kills: int, seed: int, clients: int = 4,
              batch: int = 100) -> CrashFigures:
    """Push ``records`` from ``clients`` clients while the gateway on ``store`` is SIGKILLed ``kills``
    times at random moments, and account for every acknowledged record."""
    started = time.monotonic()
    Receiver.received = []
    receiver_port = _free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["SUPEX_SECRET_COUNTY"] = ENV["SUPEX_SECRET_COUNTY"] = COUNTY_SECRET
    folder.mkdir(parents=True, exist_ok=True)
    gateway = Served(folder)
    gateway.config.write_text(gateway_config(gateway.port, store, batch=batch,
                                             push={"county": f"http://127.0.0.1:{receiver_port}/in"}),
                              encoding="utf-8")
    rng = random.Random(seed)
    kill_points = sorted(rng.randrange(records // 10, records * 9 // 10) for _ in range(kills))
    acknowledged: set[str] = set()
    attempts = [0]
    killed = [0]

    async def client(share: range) -> None:
        async with SupexClient(gateway.url, "amr", SECRETS["amr"], attempts=8) as supex:
            for first in range(share.start, share.stop, batch):
                chunk = [inspection(n) for n in range(first, min(first + batch, share.stop))]
                while True:  # the same batch again until a 200: what was stored is a duplicate
                    attempts[0] += 1
                    try:
                        answer = await supex.push(chunk)
                    except GatewayUnreachableError:
                        await asyncio.sleep(0.2)
                        continue
                    acknowledged.update(r["record_id"] for r in answer["results"]
                                        if r["status"] in ("accepted", "duplicate"))
                    break

    def killer() -> None:
        for point in kill_points:
            while len(acknowledged) < point:
                time.sleep(0.01)  # watching the pushes' progress, not timing them
            time.sleep(rng.random() * 0.05)  # somewhere inside the next commits
            gateway.kill()
            killed[0] += 1
            gateway.start()

    async def push_all() -> None:
        step = -(-records // clients)
        await asyncio.gather(*(client(range(k * step, min((k + 1) * step, records))) for k in range(clients)))

    try:
        gateway.start()
        watcher = threading.Thread(target=killer, daemon=True)
        watcher.start()
        asyncio.run(push_all())
        watcher.join(timeout=120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with Receiver.guard:
                delivered = {record_id for _, record_id, _ in Receiver.received}
            if acknowledged <= delivered:
                break
            time.sleep(0.1)  # waiting for pushes to arrive, not timing them
        pulled = asyncio.run(_pull(gateway.url))
    finally:
        gateway.kill()
        server.shutdown()
    verified = gateway.supex("log", "verify", "--config", str(gateway.config))
    versions, distinct = _stored(store)
    with Receiver.guard:
        pushes = Counter(Receiver.received)
    pulls = Counter(pulled)
    return CrashFigures(
        records=records, acknowledged=len(acknowledged), kills=killed[0], push_calls=attempts[0],
        stored=distinct, stored_twice=versions - distinct,
        lost_push=len(acknowledged - {record_id for _, record_id, _ in pushes}),
        lost_pull=len(acknowledged - {record_id for _, record_id, _ in pulls}),
        repeated_pushes=sum(pushes.values()) - len(pushes), repeated_pulls=sum(pulls.values()) - len(pulls),
        log_verified=verified.returncode == 0 and verified.stdout.startswith("OK"),
        seconds=time.monotonic() - started)


async def _pull(url: str) -> list[tuple[str, str, int]]:
    """The pull consumer's inbox read to the end, page by page, each page acknowledged."""
    seen: list[tuple[str, str, int]] = []
    async with SupexClient(url, "jinan", SECRETS["jinan"], attempts=8) as client:
        while True:
            answer = await client.inbox(limit=1000)
            if not answer["records"]:
                return seen
            seen.extend((r["source"]["connector"], r["record_id"], r["version"]) for r in answer["records"])
            await client.ack(answer["next"])
