"""The store's whole path of a record, in one process: prepared, ingested and routed to a pull and
a push consumer, pulled and acknowledged, claimed and delivered — the work behind a push and its
two deliveries without HTTP. Prints records a second; under callgrind its instruction count is
what compares two versions of the code on a machine whose speed varies:

    valgrind --tool=callgrind .venv/bin/python benchmarks/bench_store_path.py
    BATCHES=0 valgrind --tool=callgrind .venv/bin/python benchmarks/bench_store_path.py   # imports alone
    CONSUMERS=0 valgrind ...   # no consumer: the records only stored, as in bench_ingest.py

Run: .venv/bin/python benchmarks/bench_store_path.py
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test suite's helpers

import orjson
from _data import machine

from gateway.config import ConnectorConfig
from gateway.flow.prepare import RecordPreparer
from gateway.flow.sharing import share
from gateway.store import open_store
from policy import Policy, local_today
from tests.gateway.conftest import inspection

AMR = ConnectorConfig(id="amr", name="producer", department_code="11370000FE1KM2U90Y", region_code="370000",
                      produces=["inspection"])
JINAN = ConnectorConfig(id="jinan", name="pull consumer", department_code="11370100MB2857939K",
                        region_code="370100", consumes=["inspection"])
COUNTY = ConnectorConfig(id="county", name="push consumer", department_code="11370000FE1KM2U90Y",
                         region_code="370102", consumes=["inspection"], delivery="push",
                         endpoint="http://127.0.0.1:9/in")
BATCH = 500


def main() -> None:
    batches = int(os.environ.get("BATCHES", "4"))
    consumers = [JINAN, COUNTY] if os.environ.get("CONSUMERS", "2") != "0" else []
    policy = Policy([AMR, *consumers], [])
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(f"{folder}/s.db", log_hash="sm3")
        preparer = RecordPreparer(log_hash="sm3", max_records=BATCH)
        started = time.perf_counter()
        for b in range(batches):
            body = orjson.dumps([inspection(n) for n in range(b * BATCH, (b + 1) * BATCH)])
            prepared = preparer.prepare(AMR, None, body, "application/json", store.now())
            store.records.ingest("amr", f"b{b}", prepared.incoming, prepared.rejected, policy=policy)
        today = local_today(dt.datetime.now(dt.UTC))
        after, pulled = None, 0
        while (page := store.inbox.page("jinan", after, BATCH,
                                        share=lambda r: share(policy, r, "jinan", today, "sm3"))).records:
            after, pulled = page.next, pulled + len(page.records)
        if after is not None:
            store.inbox.ack("jinan", after)
        delivered = 0
        while due := store.outbox.due("county", 1e12, BATCH, "bench"):
            store.outbox.delivered("county", [(d, share(policy, d.record, "county", today, "sm3")) for d in due])
            delivered += len(due)
        seconds = time.perf_counter() - started
        entries = store.log.head()[0]
        store.close()
    records = batches * BATCH
    print(f"machine: {machine()}")
    print(f"store path of {records:,} records (ingested, routed to {len(consumers)} consumers, {pulled:,} pulled, "
          f"{delivered:,} delivered, {entries:,} log entries): {records / seconds if seconds else 0:,.0f} records/s")


if __name__ == "__main__":
    main()
