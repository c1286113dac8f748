"""Realistic benchmark records: distinct subjects with valid USCCs, so identifier caches do not flatter."""

from __future__ import annotations

import copy
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stdnum.cn import uscc

from schemas import example_record, load_schema_set

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "connectors" / "samples"
VALID = {t: example_record(t) for t in load_schema_set().types}
_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def machine() -> str:
    """One line naming the machine the figures come from."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def random_uscc(rng: random.Random, region: str = "370102") -> str:
    """A valid unified social credit code of an enterprise in ``region``."""
    body = "91" + region + "".join(rng.choice(_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def records(record_type: str, count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` valid records of ``record_type`` with distinct ids and subjects (distinct per type too)."""
    rng = random.Random(f"{record_type}-{seed}")
    out = []
    for n in range(count):
        rec = copy.deepcopy(VALID[record_type])
        rec["record_id"] = f"bench-{record_type}-{n}"
        rec["data"]["subject"]["cert_no"] = random_uscc(rng)
        out.append(rec)
    return out


def internet_plus_rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` Internet+ exchange rows modelled on the sample, with distinct ids and subjects."""
    rng = random.Random(seed)
    base = json.loads((SAMPLES / "check_actions.json").read_text(encoding="utf-8"))
    rows = []
    for n in range(count):
        row = dict(base[n % len(base)])
        row["record_unique_identity"] = f"{row['implement_institution_code']}-JC-{n:09d}"
        row["administrative_cp_ui_code"] = random_uscc(rng, row["area_number"])
        rows.append(row)
    return rows


def best_rate(fn: Callable[[Any], object], passes: list[list[Any]]) -> float:
    """Records per second of ``fn``: the best of several passes, as timeit does, because on a
    shared machine the slower passes measure the neighbours. Each pass gets records of its own,
    so that no identifier cache is warm from an earlier pass."""
    best = float("inf")
    for items in passes:
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return len(passes[0]) / best
