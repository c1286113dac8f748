"""Validation throughput: jsonschema's Draft202012Validator (with its format checker) against
supex's compiled schema stage on the same schemas, and supex's full validation
(schema + identifiers + regions + times), on valid `inspection` and `penalty` records.

Run: .venv/bin/python benchmarks/bench_validate.py [--records N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from _data import machine, records

from schemas import Validator

PASSES = 9


def rate(fn: Callable[[Any], object], passes: list[list[Any]]) -> float:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10000)
    args = parser.parse_args()
    validator = Validator()
    print(f"machine: {machine()}")
    for record_type in ("inspection", "penalty"):
        items = records(record_type, args.records * PASSES)
        passes = [items[n * args.records:(n + 1) * args.records] for n in range(PASSES)]
        assert all(validator.validate(r).ok for r in items[:200])
        baseline = rate(lambda r: validator.is_schema_valid(r, stage="full"), [p[:300] for p in passes[:3]])
        fast = rate(lambda r: validator.is_schema_valid(r, stage="fast"), passes)
        full = rate(validator.validate, passes)
        print(f"{record_type:11} jsonschema Draft202012Validator+formats {baseline:>10,.0f} records/s")
        print(f"{record_type:11} supex schema stage                    {fast:>10,.0f} records/s  "
              f"{fast / baseline:.1f}x jsonschema")
        print(f"{record_type:11} supex full validation (schema+semantic) {full:>8,.0f} records/s  "
              f"{full / baseline:.1f}x jsonschema")


if __name__ == "__main__":
    main()
