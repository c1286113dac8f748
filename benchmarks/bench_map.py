"""Mapping throughput: each built-in mapping, source record → validated standard record, against
the same transformation written by hand in plain Python (benchmarks/handwritten.py), with the
same validation, in the same run. Then whole files through `supex map --validate`: a workbook of
--sheet-rows licences (title row, two-row header, written as Excel writes them) beside openpyxl's
read-only reader on the same file, with the peak resident memory; and pages of a paged JSON API
(an envelope around each page).

Run: .venv/bin/python benchmarks/bench_map.py [--records N] [--sheet-rows N]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import datetime as dt
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import handwritten
import openpyxl
import orjson
import psutil
import xlsxwriter
from _data import SAMPLES, best_rate, internet_plus_rows, machine, random_uscc
from lxml import etree

from gateway.config import resolve_mapping
from mappings import builtin_mapping, map_record, map_stream
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


def licence_rows(count: int, seed: int = 5) -> list[list[Any]]:
    """Rows of the licence workbook of connectors/samples/market_licences.xlsx, distinct and valid."""
    rng = random.Random(f"licence-{seed}")
    issuer = "11370100004188031B"
    rows = []
    for n in range(count):
        issued = dt.date(2024, 1, 1) + dt.timedelta(days=n % 365)
        rows.append([f"JY1370102{n:07d}", "食品经营许可证", f"济南鲁达食品有限公司{n % 997}", random_uscc(rng),
                     "济南市市场监督管理局", issuer, issued, (issued - dt.date(1899, 12, 30)).days + 1826, "370102",
                     "有效" if n % 7 else "注销"])
    return rows


def workbook(rows: int) -> Path:
    """A workbook of ``rows`` licences as Excel and WPS write them — text in the shared-strings
    table, dates as formatted serials — made once with xlsxwriter and kept in the temporary folder."""
    path = Path(tempfile.gettempdir()) / f"supex-bench-licences-sst-{rows}.xlsx"
    if not path.exists():
        book = xlsxwriter.Workbook(str(path))
        sheet = book.add_worksheet("许可信息")
        date = book.add_format({"num_format": "yyyy-mm-dd"})
        sheet.write_row(0, 0, ["济南市市场监督管理局 食品经营许可信息公示"])
        sheet.write_row(1, 0, ["许可编号", "许可证名称", "被许可人", None, "许可机关", None, "许可日期", "有效期至",
                               "行政区划", "许可状态"])
        sheet.write_row(2, 0, [None, None, "名称", "统一社会信用代码", "名称", "统一社会信用代码", None, None, None,
                               None])
        for number, row in enumerate(licence_rows(rows), 3):
            for column, value in enumerate(row):
                if isinstance(value, dt.date):
                    sheet.write_datetime(number, column, dt.datetime(value.year, value.month, value.day), date)
                else:
                    sheet.write(number, column, value)
        book.close()
    return path


def run_measured(command: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds and peak resident MB of a command, and its standard error's last
    line. The CPU time is what a core of its own would take: on a shared machine the wall time
    also measures the neighbours."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink, tempfile.TemporaryFile() as report:
        proc = subprocess.Popen(command, stdout=sink, stderr=report)
        watched, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, watched.memory_info().rss)
            time.sleep(0.02)  # sampling the child's memory, not timing it
        seconds = time.perf_counter() - start
        report.seek(0)
        last = report.read().decode().strip().splitlines()[-1]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = max(peak, after.ru_maxrss * 1024)
    return seconds, cpu, peak / 2**20, last


def openpyxl_rate(path: Path) -> float:
    start = time.perf_counter()
    book = openpyxl.load_workbook(path, read_only=True)
    count = sum(1 for _ in book["许可信息"].iter_rows(values_only=True))
    return count / (time.perf_counter() - start)


def files(sheet_rows: int) -> None:
    path = workbook(sheet_rows)
    supex = str(Path(sys.executable).parent / "supex")
    mapping = str(SAMPLES / "market.license.toml")
    seconds, cpu, peak, summary = run_measured([supex, "map", "--mapping", mapping, "--validate", str(path)])
    assert f"{sheet_rows} valid" in summary, summary
    baseline = openpyxl_rate(path)
    compiled, validator = resolve_mapping(mapping), Validator()

    def whole_file(_pass: int) -> None:
        with path.open("rb") as stream:
            assert sum(r.verdict.ok for r in map_stream(compiled, validator, stream)) == sheet_rows

    in_process = best_rate(whole_file, [[0]] * PASSES) * sheet_rows  # read, map and validate the whole sheet
    label = f"xlsx, {sheet_rows:,} rows"
    print(f"{label:30} read + map + validate {in_process:>8,.0f} rows/s (best of {PASSES}; target >= 10,000) | "
          f"supex map --validate, the command: {sheet_rows / seconds:,.0f} rows/s wall, {sheet_rows / cpu:,.0f} of "
          f"CPU time, peak RSS {peak:,.0f} MB (target < 150) | openpyxl read-only, reading alone "
          f"{baseline:>8,.0f} rows/s | ratio {in_process / baseline:.1f}x")
    rows = json.loads((SAMPLES / "tax_penalties.page1.json").read_text(encoding="utf-8"))["data"]["list"][:2]
    pages = []
    for p in range(200):
        page_rows = [{**rows[n % 2], "punishId": f"SWCF-{p}-{n}"} for n in range(100)]
        pages.append(orjson.dumps({"code": 0, "msg": "成功", "data": {"total": 20000, "pageNo": p + 1,
                                                                       "list": page_rows}}))
    tax = resolve_mapping(str(SAMPLES / "tax.penalty.toml"))
    validator = Validator()
    flat = [row for page in pages for row in orjson.loads(page)["data"]["list"]]
    start = time.perf_counter()
    mapped = sum(1 for page in pages for r in map_stream(tax, validator, io.BytesIO(page)) if r.verdict.ok)
    paged = mapped / (time.perf_counter() - start)
    start = time.perf_counter()
    for row in flat:
        map_record(tax, validator, row)
    plain = len(flat) / (time.perf_counter() - start)
    assert mapped == len(flat)
    print(f"{'paged JSON, 200 pages of 100':30} pages through their envelope {paged:>8,.0f} records/s | the same rows "
          f"mapped one by one {plain:>8,.0f} records/s | ratio {paged / plain:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--sheet-rows", type=int, default=100_000)
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
    files(args.sheet_rows)


if __name__ == "__main__":
    main()
