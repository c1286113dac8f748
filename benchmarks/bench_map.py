"""Mapping throughput: each built-in mapping, source record → validated standard record, against
the same transformation written by hand in plain Python (benchmarks/handwritten.py), with the
same validation, in the same run.

Run: .venv/bin/python benchmarks/bench_map.py [--records N]
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import random
from typing import Any

import handwritten
from _data import SAMPLES, best_rate, internet_plus_rows, machine, random_uscc
from lxml import etree

from mappings import builtin_mapping, map_record
from schemas import Validator

PASSES = 3


def penalty_elements(count: int, seed: int) -> list[Any]:
    rng = random.Random(f"penalty-{seed}")
    root = etree.fromstring((SAMPLES / "penalties.xml").read_bytes())
    base = list(root)
    out = []
    for n in range(count):
        element = copy.deepcopy(base[n % len(base)])
        element.find("{urn:sd:zfjd:xzcf:1}CF_ID").text = f"CF-{seed}-{n}"
        element.find("{urn:sd:zfjd:xzcf:1}CF_XDR_SHDM").text = random_uscc(rng)
        out.append(element)
    return out


def csv_rows(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(f"csv-{seed}")
    base = list(csv.DictReader(io.StringIO((SAMPLES / "results.gb18030.csv").read_bytes().decode("gb18030"))))
    rows = []
    for n in range(count):
        row = dict(base[n % len(base)])
        row["抽查任务编号"] = f"RW-{seed}-{n}"
        row["统一社会信用代码"] = random_uscc(rng, row["行政区划"])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10000)
    args = parser.parse_args()
    n = args.records
    validator = Validator()
    print(f"machine: {machine()}")
    cases = [
        ("internet_plus.check_action", lambda s: internet_plus_rows(n, seed=s), handwritten.internet_plus),
        ("enforcement_oversight.penalty", lambda s: penalty_elements(n, s), handwritten.penalty),
        ("double_random.result", lambda s: csv_rows(n, s), handwritten.double_random),
    ]
    for name, make, by_hand in cases:
        mapping = builtin_mapping(name)
        sample = make(99)[:50]
        for source in sample:  # both sides produce the same, valid records
            record, verdict = map_record(mapping, validator, source)
            assert verdict.ok, name
            assert record == by_hand(source), name

        def compiled(source: Any, mapping: Any = mapping) -> None:
            map_record(mapping, validator, source)

        def plain(source: Any, by_hand: Any = by_hand) -> None:
            validator.validate(by_hand(source))

        # interleave the two sides, each pass on records of its own
        compiled_rate = best_rate(compiled, [make(2 * p) for p in range(PASSES)])
        plain_rate = best_rate(plain, [make(2 * p + 1) for p in range(PASSES)])
        print(f"{name:30} compiled mapping + validation {compiled_rate:>8,.0f} records/s | "
              f"hand-written + validation {plain_rate:>8,.0f} records/s | "
              f"time ratio compiled/hand-written {plain_rate / compiled_rate:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
