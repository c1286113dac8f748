"""``supex quality report``: producers' timeliness and acceptance (及时率, 合格率) for a month, as
a workbook (a summary sheet whose figures link to the records behind them) or as CSV."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import audited, configured_store
from gateway.exceptions import ConfigError
from gateway.store.procedure import month_span, quality_rows
from gateway.terminal import EXIT_OK

__all__ = ["COLUMNS", "quality_report"]

# the report's columns: key, heading
COLUMNS = (
    ("connector", "连接器 / connector"), ("department_code", "部门代码 / department"),
    ("received", "报送 / received"), ("accepted", "接收 / accepted"), ("rejected", "退回 / rejected"),
    ("late", "迟报 / late"), ("corrected", "更正 / corrected"), ("feedback_due", "应反馈 / feedback due"),
    ("feedback_late", "反馈逾期 / feedback late"), ("timeliness_rate", "及时率 / timeliness"),
    ("acceptance_rate", "合格率 / acceptance"), ("feedback_timeliness_rate", "反馈及时率 / feedback timeliness"),
)
_DETAILED = ("rejected", "late", "corrected", "feedback_late")  # figures whose records the workbook lists


def quality_report(args: argparse.Namespace) -> int:
    """Write the month's report to ``--output`` (or CSV to standard output)."""
    config, store = configured_store(args)
    try:
        try:
            name, start, end = month_span(args.month, store.clock())
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        departments = {c.id: c.department_code for c in config.connector}
        rows = quality_rows(store.procedure.quality(start, end), departments)
        details = {(row["connector"], figure): store.procedure.quality_records(row["connector"], figure, start, end)
                   for row in rows for figure in _DETAILED if row[figure]}
        audited(store, args, f"quality report {name}")
    finally:
        store.close()
    if args.format == "xlsx":
        args.output = args.output or Path(f"quality-{name}.xlsx")
        _workbook(args.output, name, rows, details)
    elif args.output is None:
        _csv(sys.stdout, rows)
    else:
        with Path(args.output).open("w", encoding="utf-8-sig", newline="") as out:  # Excel reads the BOM
            _csv(out, rows)
    if args.output is not None:
        print(f"{args.output}: {len(rows)} producers, {name} / 已写入", file=sys.stderr)
    return EXIT_OK


def _csv(out: Any, rows: list[dict[str, Any]]) -> None:
    writer = csv.writer(out)
    writer.writerow([heading for _, heading in COLUMNS])
    for row in rows:
        writer.writerow(["" if row[key] is None else row[key] for key, _ in COLUMNS])


def _workbook(path: Path, month: str, rows: list[dict[str, Any]],
              details: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
    import xlsxwriter  # noqa: PLC0415 - loaded by this command alone

    book = xlsxwriter.Workbook(str(path), {"constant_memory": False})
    try:
        bold, percent = book.add_format({"bold": True}), book.add_format({"num_format": "0.00%"})
        summary = book.add_worksheet("quality")
        records = book.add_worksheet("records")
        summary.write(0, 0, f"监管数据报送质量 / supervision data quality, {month}", bold)
        for col, (_, heading) in enumerate(COLUMNS):
            summary.write(2, col, heading, bold)
        records.write_row(0, 0, ["连接器 / connector", "指标 / figure", "记录 / record", "详情 / detail"], bold)
        line = 1
        anchors: dict[tuple[str, str], int] = {}
        for (connector, figure), found in details.items():
            anchors[(connector, figure)] = line
            for item in found:
                record = item.get("record_id") or ""
                rest = "; ".join(f"{k}={v}" for k, v in item.items() if k != "record_id" and v is not None)
                records.write_row(line, 0, [connector, figure, record, rest])
                line += 1
        for r, row in enumerate(rows, start=3):
            for col, (key, _) in enumerate(COLUMNS):
                value = row[key]
                if key.endswith("_rate") and value is not None:
                    summary.write_number(r, col, value, percent)
                elif (row["connector"], key) in anchors:  # one click to the records behind the figure
                    summary.write_url(r, col, f"internal:'records'!A{anchors[(row['connector'], key)] + 1}",
                                      string=str(value))
                elif value is not None:
                    summary.write(r, col, value)
        summary.set_column(0, len(COLUMNS) - 1, 16)
        records.set_column(0, 3, 24)
    finally:
        book.close()

