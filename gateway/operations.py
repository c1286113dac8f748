"""Commands that run or inspect a gateway: serve, check-config, log, push."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from connectors import GatewayRefusedError, SupexClient
from gateway.app import create_app
from gateway.config import load_config
from gateway.exceptions import ConfigError
from gateway.exchange_log import ChainCheck, against_checkpoint
from gateway.observability import configure_logging
from gateway.store import LogFilter, open_store
from gateway.terminal import EXIT_INVALID, EXIT_OK, progress_bar
from mappings.formats import read_json

__all__ = ["check_config", "log_checkpoint", "log_export", "log_query", "log_verify", "push", "serve"]



def serve(args: argparse.Namespace) -> int:
    """``supex serve``: run the gateway until interrupted."""
    config = load_config(args.config)
    configure_logging()
    app = create_app(config)
    # Long-lived caches (identifiers, regions, nonces) make full collections slow; collect the young
    # generations less often and keep what start-up built out of the collector's way.
    gc.set_threshold(50_000, 50, 1000)
    gc.freeze()
    # The store thread needs the GIL back after each SQLite call; with the default 5 ms switch
    # interval a busy event loop starves it and commits queue up behind each other.
    sys.setswitchinterval(0.0005)
    print(f"supex serving on http://{config.gateway.listen} (store {config.gateway.store})", file=sys.stderr)
    web.run_app(app, host=config.gateway.host, port=config.gateway.port, access_log=None, print=None)
    return EXIT_OK


def check_config(args: argparse.Namespace) -> int:
    """``supex check-config``: validate a configuration without starting anything."""
    config = load_config(args.config, need_secrets=not args.no_secrets)
    ids = ", ".join(c.id for c in config.connector) or "none"
    print(f"{args.config}: OK — {len(config.connector)} connectors ({ids}), {len(config.auditor)} auditors, "
          f"{len(config.admin)} admins, {len(config.sharing)} sharing rules, store {config.gateway.store}")
    return EXIT_OK


def _store(args: argparse.Namespace) -> Any:
    config = load_config(args.config, need_secrets=False)
    path = config.store_path()
    if not path.startswith("postgresql://") and not Path(path).exists():
        raise ConfigError(f"存储不存在 / no store at {path}")
    return open_store(path, log_hash=config.gateway.log_hash)


def log_verify(args: argparse.Namespace) -> int:
    """``supex log verify``: recompute the whole hash chain; exit 1 naming the first bad entry."""
    store = _store(args)
    try:
        total = store.log_head()[0]
        outcome = ChainCheck(True, 0)
        with progress_bar() as progress:
            task = progress.add_task("verifying", total=total)
            for outcome in store.verify_log():
                progress.update(task, completed=outcome.entries)
        if args.checkpoint:
            outcome = against_checkpoint(outcome, args.checkpoint, store.hash_at(args.checkpoint[0]))
    finally:
        store.close()
    if args.json:
        print(json.dumps({"ok": outcome.ok, "entries": outcome.entries, "first_bad_seq": outcome.first_bad_seq,
                          "reason": outcome.reason}))
    elif outcome.ok:
        print(f"OK: {outcome.entries} entries, head {outcome.head} / 日志完整")
    else:
        print(f"BROKEN at seq {outcome.first_bad_seq}: {outcome.reason} ({outcome.entries} entries before it verified)"
              f" / 日志在第 {outcome.first_bad_seq} 条被篡改")
    return EXIT_OK if outcome.ok else EXIT_INVALID


def log_checkpoint(args: argparse.Namespace) -> int:
    """``supex log checkpoint``: print the head hash, to record outside the system."""
    store = _store(args)
    try:
        seq, head = store.log_head()
    finally:
        store.close()
    print(json.dumps({"seq": seq, "hash": head, "algorithm": store.log_hash, "checkpoint": f"{seq}:{head}"}))
    return EXIT_OK


def _filter(args: argparse.Namespace) -> LogFilter:
    return LogFilter(since=args.since, until=args.until, connector=args.connector, counterpart=args.counterpart,
                     record_type=args.record_type, record_id=args.record_id, event=args.event, rule=args.rule)


def log_query(args: argparse.Namespace) -> int:
    """``supex log query``: filtered entries as a table or JSON lines."""
    store = _store(args)
    try:
        for entry in store.log_entries(where=_filter(args), limit=args.limit):
            if args.json:
                print(orjson.dumps(entry.content() | {"hash": entry.hash}).decode())
            else:
                print(f"{entry.seq:>8} {entry.at} {entry.event:14} {entry.connector or '-':16} "
                      f"{entry.record_type or '-':18} {entry.record_id or '-'} {entry.reason or ''}")
    finally:
        store.close()
    return EXIT_OK


def log_export(args: argparse.Namespace) -> int:
    """``supex log export``: every entry (with hashes) as NDJSON."""
    store = _store(args)
    out = sys.stdout.buffer
    try:
        for entry in store.log_entries(where=_filter(args)):
            out.write(orjson.dumps(entry.content() | {"prev_hash": entry.prev_hash, "hash": entry.hash}) + b"\n")
    finally:
        store.close()
    out.flush()
    return EXIT_OK


def _content_type(path: str) -> str | None:
    suffix = Path(path).suffix.lower()
    return {".xml": "application/xml", ".csv": "text/csv"}.get(suffix)


async def _push(args: argparse.Namespace, url: str, secret: str) -> dict[str, int]:
    totals = {"accepted": 0, "duplicates": 0, "stale": 0, "rejected": 0}
    async with SupexClient(url, args.connector, secret) as client:
        with progress_bar() as progress:
            task = progress.add_task("pushing", total=None)
            for name in args.files:
                kind = _content_type(name)
                if kind:
                    answers = [await client.push_body(Path(name).read_bytes(), kind)]
                else:
                    with Path(name).open("rb") as stream:
                        items = (i.value for i in read_json(stream) if i.error is None)
                        answers = [a async for a in client.push_all(items, args.batch_size)]
                for answer in answers:
                    for key in totals:
                        totals[key] += int(answer.get(key, 0))
                    for result in answer.get("results", []):
                        if result.get("status") == "rejected":
                            codes = ", ".join(e.get("code", "") for e in result.get("errors", []))
                            print(f"{name}: record {result.get('index')} id={result.get('record_id')}: rejected "
                                  f"({codes})", file=sys.stderr)
                    progress.update(task, advance=len(answer.get("results", [])))
    return totals


def push(args: argparse.Namespace) -> int:
    """``supex push``: sign and push files as a connector, with a progress bar and a summary."""
    url, secret = args.url, os.environ.get("SUPEX_SECRET_" + args.connector.upper().replace("-", "_"))
    if args.config:
        config = load_config(args.config)
        if args.connector not in config.secrets:
            raise ConfigError(f"配置中没有连接器 / no connector {args.connector!r} in {args.config}")
        secret = config.secrets[args.connector]
        url = url or f"http://{config.gateway.listen}"
    if not secret or not url:
        raise ConfigError("需要 --config，或 --url 加 SUPEX_SECRET_<ID> / "
                          "give --config, or --url and SUPEX_SECRET_<ID>")
    try:
        totals = asyncio.run(_push(args, url, secret))
    except GatewayRefusedError as exc:
        print(f"supex: the gateway refused the push: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"accepted {totals['accepted']}, duplicates {totals['duplicates']}, stale {totals['stale']}, "
          f"rejected {totals['rejected']} / 接收 {totals['accepted']}，重复 {totals['duplicates']}，"
          f"过期 {totals['stale']}，拒收 {totals['rejected']}")
    return EXIT_OK if totals["rejected"] == 0 else EXIT_INVALID
