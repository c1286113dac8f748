"""Validation throughput: jsonschema's Draft202012Validator (with its format checker) against
supex's compiled schema stage on the same schemas, and supex's full validation
(schema + identifiers + regions + times), on valid `inspection` and `penalty` records.

Run: .venv/bin/python benchmarks/bench_validate.py [--records N]
"""

from __future__ import annotations

import argparse

from _data import best_rate, machine, records

from schemas import Validator

PASSES = 9


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
        baseline = best_rate(lambda r: validator.is_schema_valid(r, stage="full"), [p[:300] for p in passes[:3]])
        fast = best_rate(lambda r: validator.is_schema_valid(r, stage="fast"), passes)
        full = best_rate(validator.validate, passes)
        print(f"{record_type:11} jsonschema Draft202012Validator+formats {baseline:>10,.0f} records/s")
        print(f"{record_type:11} supex schema stage                    {fast:>10,.0f} records/s  "
              f"{fast / baseline:.1f}x jsonschema")
        print(f"{record_type:11} supex full validation (schema+semantic) {full:>8,.0f} records/s  "
              f"{full / baseline:.1f}x jsonschema")


if __name__ == "__main__":
    main()
