"""``supex connector test``: the acceptance suite a connector passes before it goes live."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.acceptance import FAIL, NOT_RUN, PASS, SKIP, CheckResult, run_suite, suite_for
from gateway.terminal import EXIT_INVALID, EXIT_OK

__all__ = ["connector_test"]


def connector_test(args: argparse.Namespace) -> int:
    """``supex connector test``: the acceptance suite as a table with reasons. Exit 1 if a check
    failed, or applies to the connector and could not be run."""
    suite = suite_for(args.config, args.connector, args.url)
    console = Console(highlight=False)
    marks = {PASS: "[green]PASS[/green]", FAIL: "[red]FAIL[/red]", SKIP: "[dim]SKIP[/dim]",
             NOT_RUN: "[yellow]NOT RUN[/yellow]"}

    def show(result: CheckResult) -> None:
        if args.json:
            print(json.dumps(result.as_dict(), ensure_ascii=False), flush=True)

    if not args.json:
        console.print(f"connector {suite.connector.id} ({suite.connector.kind}) against {suite.url}, "
                      f"run {suite.run_id}")
    results = run_suite(suite, show)
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in marks}
    left = sorted(suite.left)
    if args.json:
        print(json.dumps({"run": suite.run_id, "left": left}, ensure_ascii=False))
    else:
        table = Table("check / 检查", "result / 结果", "detail / 说明", show_lines=False)
        for result in results:
            table.add_row(result.name, marks[result.outcome], escape(result.detail))
        console.print(table)
        console.print(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[NOT_RUN]} not run, {counts[SKIP]} not "
                      f"applicable / 通过 {counts[PASS]}，失败 {counts[FAIL]}，未能运行 {counts[NOT_RUN]}")
        for result in results:
            if result.outcome == NOT_RUN:
                console.print(f"  not run: {result.name}: {escape(result.detail)}")
        if left:
            console.print(f"left in the store / 留在网关中: {len(left)} test records, ids conntest-{suite.run_id}-… "
                          "(stored and routed like any other; no record of the connector's own was changed)")
    return EXIT_INVALID if counts[FAIL] or counts[NOT_RUN] else EXIT_OK
