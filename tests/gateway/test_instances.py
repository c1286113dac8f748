"""Three `supex serve` processes on one PostgreSQL database, one of them SIGKILLed and started
again while records pour in: every accepted record is stored once and reaches each consumer,
whichever gateway a consumer asks, and the one log chain verifies."""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors import SupexClient
from connectors.exceptions import GatewayUnreachableError
from tests.backends import Databases
from tests.gateway.conftest import SECRETS, inspection
from tests.gateway.test_serve import ENV, Served, _free_port
from tests.reliability.crash import COUNTY_SECRET, Receiver, gateway_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RECORDS = int(os.environ.get("SUPEX_INSTANCES_RECORDS", "50000"))
BATCH = 500


async def _push(gateways: list[Served], batch: int, records: list[dict[str, Any]]) -> int:
    """Push a batch to the gateway its turn names, or the next one up if that one is down; the
    number accepted (as duplicates too, if a dead gateway stored it before it died)."""
    for turn in range(len(gateways)):
        gateway = gateways[(batch + turn) % len(gateways)]
        async with SupexClient(gateway.url, "amr", SECRETS["amr"], attempts=1) as client:
            try:
                answer = await client.push(records)
            except GatewayUnreachableError:
                continue
        return int(answer["accepted"]) + int(answer["duplicates"])
    raise AssertionError("no gateway took the batch")


async def _pull_everything(gateways: list[Served]) -> list[str]:
    """Page through jinan's inbox asking each gateway in turn, acknowledging every page."""
    seen: list[str] = []
    for page in range(RECORDS // 1000 + 10):
        async with SupexClient(gateways[page % len(gateways)].url, "jinan", SECRETS["jinan"]) as client:
            answer = await client.inbox(limit=1000)
            if not answer["records"]:
                return seen
            seen.extend(r["record_id"] for r in answer["records"])
            await client.ack(answer["next"])
    return seen


def test_three_gateways_share_one_database_through_a_kill(tmp_path: Path, postgres_databases: Databases) -> None:
    store = postgres_databases.new()
    receiver_port = _free_port()
    Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["SUPEX_SECRET_COUNTY"] = ENV["SUPEX_SECRET_COUNTY"] = COUNTY_SECRET
    gateways = []
    for n in range(3):
        folder = tmp_path / f"gateway-{n}"
        folder.mkdir()
        gateway = Served(folder)
        gateway.config.write_text(gateway_config(gateway.port, store, batch=BATCH,
                                                 push={"county": f"http://127.0.0.1:{receiver_port}/in"})
                                  # every gateway on one store signs with the one log key
                                  + f'\n[log]\nkey_file = "{tmp_path / "log-key"}"\n', encoding="utf-8")
        gateways.append(gateway)
    try:
        for gateway in gateways:
            gateway.start()
        victim = gateways[1]

        async def push_all() -> int:
            taken = 0
            batches = RECORDS // BATCH
            for first in range(0, batches, 3):
                if first == batches // 2 - batches // 2 % 3:
                    victim.kill()  # midway, while its deliveries are in flight
                if first == 3 * batches // 4 - 3 * batches // 4 % 3:
                    victim.start()
                rounds = [_push(gateways, b, [inspection(n) for n in range(b * BATCH, (b + 1) * BATCH)])
                          for b in range(first, min(first + 3, batches))]
                taken += sum(await asyncio.gather(*rounds))
            return taken

        assert asyncio.run(push_all()) == RECORDS
        deadline = time.monotonic() + 300
        while len(set(Receiver.received)) < RECORDS and time.monotonic() < deadline:
            time.sleep(0.2)  # waiting for the pushes to arrive, not timing them
        pulled = asyncio.run(_pull_everything(gateways))
    finally:
        for gateway in gateways:
            gateway.kill()
        server.shutdown()
    expected = {f"in-{n}" for n in range(RECORDS)}
    with psycopg.connect(store) as db:
        stored = db.execute("SELECT count(*), count(DISTINCT record_id) FROM changes").fetchone()
        waiting = db.execute("SELECT count(*) FROM deliveries WHERE consumer = 'county'").fetchone()
    assert stored == (RECORDS, RECORDS)  # stored once each
    delivered = Counter(Receiver.received)
    assert {record_id for _, record_id, _ in delivered} == expected and waiting == (0,)
    # at least once: a second push of the same version can only be a claim the killed gateway
    # had in flight (one round of at most BATCH records)
    assert sum(delivered.values()) - len(delivered) <= BATCH
    assert sorted(pulled) == sorted(expected)  # exactly once each, whichever gateway answered
    verified = gateways[0].supex("log", "verify", "--config", str(gateways[0].config))
    assert verified.returncode == 0 and verified.stdout.startswith("OK"), verified.stdout + verified.stderr
