"""Policy evaluation: route + rule + mask, on one core.

A province's worth of connectors (the province, its 16 cities, a few counties and departments)
and sharing rules with conditions, field allow-lists and masks. Each record is routed; each
consumer it reaches is decided and gets its shaped record. One decision = one (record, consumer)
pair routed, decided and shaped.

Run: .venv/bin/python benchmarks/bench_policy.py
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import time
from typing import Any

from _data import VALID, machine, random_uscc

from gateway.config import ConnectorConfig
from policy import Policy, SharingRule

TODAY = dt.date(2026, 11, 26)
CITIES = ["3701", "3702", "3703", "3704", "3705", "3706", "3707", "3708", "3709", "3710", "3711", "3713", "3714",
          "3715", "3716", "3717"]
CODES = ["11370000FE1KM2U90Y", "11370000AL7LL93D6K", "11370000B7HR4HLY1F", "11370000JUCCNBB658",
         "11370000FT2JP7NQ02", "11370000R3BKC8GB5G", "1137000081D905EA9B", "113700005446YKAR96"]
TYPES = ["inspection", "penalty", "clue", "license", "risk_warning"]


def parties() -> list[ConnectorConfig]:
    """The province platform, a platform per city, three counties, and departments."""
    out = [ConnectorConfig(id="province", name="省平台", department_code=CODES[0], region_code="370000",
                           consumes=TYPES, system_of_record=True)]
    out += [ConnectorConfig(id=f"city-{c}", name=c, department_code=CODES[1], region_code=c + "00",
                            consumes=["inspection", "penalty", "clue"]) for c in CITIES]
    out += [ConnectorConfig(id=f"county-{c}", name=c, department_code=CODES[2], region_code=c,
                            consumes=["inspection", "clue"]) for c in ("370102", "370103", "370112")]
    out += [ConnectorConfig(id=f"dept-{n}", name=str(n), department_code=code, region_code="370000",
                            consumes=["clue", "license"]) for n, code in enumerate(CODES[3:])]
    out.append(ConnectorConfig(id="source", name="源", department_code=CODES[0], region_code="370000", produces=TYPES))
    return out


def rules() -> list[SharingRule]:
    """Rules with conditions, allow-lists over nested objects and arrays, and masks."""
    cities = [f"city-{c}" for c in CITIES]
    return [
        SharingRule(id="clue-cities", record_types=["clue"], consumers=cities, purpose="线索核查",
                    fields=["clue_id", "category", "description", "region_code", "reporter.name", "reporter.phone"],
                    mask={"reporter.phone": "phone", "reporter.name": "name"}, deliver_within="24h"),
        SharingRule(id="clue-jinan", record_types=["clue"], consumers=["city-3701"], purpose="线索核查",
                    when={"region_prefix": "3701"}, fields=["clue_id", "description", "reporter", "subject"],
                    mask={"reporter.id_no": "id_no", "reporter.phone": "phone", "reporter.name": "name"}),
        SharingRule(id="clue-depts", record_types=["clue"], consumers=[f"dept-{n}" for n in range(5)],
                    purpose="协查", fields=["clue_id", "category", "subject.name"]),
        SharingRule(id="clue-counties", record_types=["clue"], consumers=["county-370102", "county-370103"],
                    purpose="属地核查", fields=["clue_id", "description", "reporter.phone"],
                    mask={"reporter.phone": "phone"}),
        SharingRule(id="inspection-counties", record_types=["inspection"], consumers=["county-370102"],
                    purpose="属地监管", fields=["action_code", "subject", "result", "inspectors.name"],
                    mask={"inspectors.name": "name"}),
    ]


def workload(count: int, seed: int) -> list[dict[str, Any]]:
    """Records of five types across the province's cities, as stored."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        record_type = TYPES[n % len(TYPES)]
        record = copy.deepcopy(VALID[record_type])
        city = rng.choice(CITIES)
        record.update(record_id=f"b-{n}", region_code=city + rng.choice(["02", "03", "12", "00"]),
                      sharing=rng.choice(["unconditional", "conditional", "conditional"]), seq=n, version=1,
                      source={"connector": "source"}, received_at="2026-11-26T08:00:00.000+00:00")
        if isinstance(record["data"].get("subject"), dict):
            record["data"]["subject"]["cert_no"] = random_uscc(rng)
        out.append(record)
    return out


def run(policy: Policy, batch: list[dict[str, Any]]) -> int:
    """Route, decide and shape every record; the number of decisions made."""
    decisions = 0
    for record in batch:
        for route in policy.routes(record, "source", catalogue=lambda _m: (), producer=lambda _r: None):
            decision = policy.decide(record, route.consumer, TODAY)
            if decision.allowed:
                policy.share(record, decision)
            decisions += 1
    return decisions


def main() -> None:
    print(f"machine: {machine()}")
    policy = Policy(parties(), rules())
    best = 0.0
    for seed in range(5):
        batch = workload(5_000, seed)
        started = time.perf_counter()
        decisions = run(policy, batch)
        best = max(best, decisions / (time.perf_counter() - started))
    print(f"policy evaluation (route + rule + mask), one core: {best:,.0f} decisions/s "
          f"({decisions / len(batch):.1f} consumers a record; target >= 100,000)")


if __name__ == "__main__":
    main()
