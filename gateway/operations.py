"""Commands that run or inspect a gateway: serve, check-config, log, push."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import structlog
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors import GatewayRefusedError, SupexClient
from gateway.acceptance import FAIL, NOT_RUN, PASS, SKIP, CheckResult, run_suite, suite_for
from gateway.config import Config, load_config, resolve_mapping
from gateway.demo import run_demo
from gateway.encryption import DataCipher, generate_key
from gateway.exceptions import ConfigError
from gateway.exchange_log import ChainCheck, against_checkpoint, audit_query
from gateway.flow.in_force import policy_in_store
from gateway.http.app import create_app
from gateway.http.serving import raise_open_files_limit, run_gateway
from gateway.observability import configure_logging
from gateway.safety import check_before_serving
from gateway.store import LogFilter, SQLStore, is_postgres_url, open_store, shown
from gateway.store.base import create_private
from gateway.terminal import EXIT_INVALID, EXIT_OK, EXIT_USAGE, progress_bar
from mappings import CompiledMapping
from mappings.exceptions import ValueMappingError
from mappings.formats import read_json
from mappings.media import FILE_TYPES
from mappings.pipeline import reverse_all, write_rows
from policy import local_today

__all__ = ["check_config", "connector_test", "deadletter_list", "deadletter_replay", "demo", "keys_generate",
           "keys_rotate", "keys_status", "log_checkpoint", "log_export", "log_query", "log_verify", "policy_explain",
           "push", "serve"]

log = structlog.get_logger("supex.serve")



def serve(args: argparse.Namespace) -> int:
    """``supex serve``: run the gateway until interrupted."""
    os.umask(0o077)  # the store, its WAL, backups, reports and moved files: the gateway's user's alone
    config = load_config(args.config)
    configure_logging()
    warnings = check_before_serving(config)
    for warning in warnings:
        log.warning("unsafe_setting", reason=warning)
    soft, hard = raise_open_files_limit()
    log.info("open_files_limit", soft=soft, hard=hard)
    app = create_app(config)
    # Long-lived caches (identifiers, regions, nonces) make full collections slow; collect the young
    # generations less often and keep what start-up built out of the collector's way.
    gc.set_threshold(50_000, 50, 1000)
    gc.freeze()
    # The store thread needs the GIL back after each SQLite call; with the default 5 ms switch
    # interval a busy event loop starves it and commits queue up behind each other.
    sys.setswitchinterval(0.0005)
    print(f"supex serving on http://{config.gateway.listen} (store {shown(config.gateway.store)}, open files up to "
          f"{soft})", file=sys.stderr)
    run_gateway(app, config.gateway)
    return EXIT_OK


def check_config(args: argparse.Namespace) -> int:
    """``supex check-config``: validate a configuration without starting anything."""
    config = load_config(args.config, need_secrets=not args.no_secrets)
    ids = ", ".join(c.id for c in config.connector) or "none"
    print(f"{args.config}: OK — {len(config.connector)} connectors ({ids}), {len(config.auditor)} auditors, "
          f"{len(config.admin)} admins, {len(config.sharing)} sharing rules, store {shown(config.gateway.store)}")
    return EXIT_OK


def _store(args: argparse.Namespace) -> Any:
    config = load_config(args.config, need_secrets=False)
    return _open_store(config, required=True)


def _open_store(config: Config, *, required: bool, cipher: DataCipher | None = None) -> SQLStore | None:
    """The configured store, if there is one (a SQLite file that does not exist yet is none: with
    ``required``, that is an error); a PostgreSQL database is always opened."""
    location = config.store_path()
    if not is_postgres_url(location) and not Path(location).exists():
        if required:
            raise ConfigError(f"存储不存在 / no store at {location}")
        return None
    return open_store(location, log_hash=config.gateway.log_hash, cipher=cipher)


def log_verify(args: argparse.Namespace) -> int:
    """``supex log verify``: recompute the whole hash chain; exit 1 naming the first bad entry."""
    store = _store(args)
    try:
        total = store.log.head()[0]
        outcome = ChainCheck(True, 0)
        with progress_bar() as progress:
            task = progress.add_task("verifying", total=total)
            for outcome in store.log.verify():
                progress.update(task, completed=outcome.entries)
        _audited(store, args, "log verify")
        if args.checkpoint:
            outcome = against_checkpoint(outcome, args.checkpoint, store.log.hash_at(args.checkpoint[0]))
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
        seq, head = store.log.head()
    finally:
        store.close()
    print(json.dumps({"seq": seq, "hash": head, "algorithm": store.log_hash, "checkpoint": f"{seq}:{head}"}))
    return EXIT_OK


def backup(args: argparse.Namespace) -> int:
    """``supex backup``: a consistent copy of the store beside the running gateways, and the
    checkpoint a restore of it verifies against."""
    store = _store(args)
    try:
        seq, head = store.log.head()  # the copy holds at least this much of the log
        store.backup(args.target)
        _audited(store, args, f"backup to {args.target.name}")
    finally:
        store.close()
    print(f"backup written: {args.target} ({args.target.stat().st_size:,} bytes), exchange log to seq {seq} / "
          "备份完成")
    print(f"after restoring it, verify with: supex log verify --config <its configuration> --checkpoint {seq}:{head}")
    return EXIT_OK


_FILTER_ARGS = ("since", "until", "connector", "counterpart", "record_type", "record_id", "event", "rule")


def _filter(args: argparse.Namespace) -> LogFilter:
    return LogFilter.of({name: getattr(args, name) for name in _FILTER_ARGS})


def _audited(store: Any, args: argparse.Namespace, what: str) -> None:
    """The command's own ``audit_query`` entry: who ran which query, from the command line."""
    filters = " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())
                       if k in _FILTER_ARGS and v is not None)
    store.log.append([audit_query(store.now(), f"cli:{getpass.getuser()}", f"cli {what} {filters}".strip())])


def _streamed(store: Any, args: argparse.Namespace, what: str, limit: int | None = None) -> Iterator[Any]:
    """The entries a query selects, with a progress bar of how far through the log it has read."""
    total = store.log.head()[0]
    with progress_bar() as progress:
        task = progress.add_task(what, total=total)
        for n, entry in enumerate(store.log.entries(where=_filter(args), limit=limit), 1):
            if n % 1000 == 0:
                progress.update(task, completed=entry.seq)
            yield entry
        progress.update(task, completed=total)


def log_query(args: argparse.Namespace) -> int:
    """``supex log query``: filtered entries as a table or JSON lines."""
    store = _store(args)
    try:
        _audited(store, args, "log query")
        for entry in _streamed(store, args, "querying", args.limit):
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
        _audited(store, args, "log export")
        for entry in _streamed(store, args, "exporting"):
            out.write(orjson.dumps(entry.content() | {"prev_hash": entry.prev_hash, "hash": entry.hash}) + b"\n")
    finally:
        store.close()
    out.flush()
    return EXIT_OK


class _Unpushable(Exception):  # noqa: N818 - a file refused before or by the gateway: exit 2, the others go on
    pass


def _push_type(name: str) -> str:
    content_type = FILE_TYPES.get(Path(name).suffix.lower())
    if content_type is None:
        raise _Unpushable(f"无法从扩展名判断格式 / cannot tell the format from the name {Path(name).name!r}: use "
                          f"{', '.join(FILE_TYPES)}")
    return content_type


def _standard_records(name: str, stream: IO[bytes], bad: list[str]) -> Iterator[Any]:
    """The file's standard records; a record that is not JSON is noted in ``bad``, and a file with
    nothing readable at its start is refused."""
    for item in read_json(stream):
        if item.error is None:
            yield item.value
        elif item.index == 0:
            raise _Unpushable(f"不是 JSON 标准记录 / not JSON standard records: {item.where}: {item.error}")
        else:
            bad.append(f"{name}: {item.where}: {item.error}")


async def _push_file(client: SupexClient, name: str, whole: bool, batch_size: int) -> list[dict[str, Any]]:
    content_type = _push_type(name)
    path = Path(name)
    if not path.is_file():
        raise _Unpushable("文件不存在 / no such file" if not path.exists() else "不是普通文件 / not a regular file")
    try:
        if whole or content_type not in ("application/json", "application/x-ndjson"):
            return [await client.push_body(path.read_bytes(), content_type)]
        bad: list[str] = []
        with path.open("rb") as stream:
            answers = [a async for a in client.push_all(_standard_records(name, stream, bad), batch_size)]
        for problem in bad:
            print(f"{problem}: not pushed", file=sys.stderr)
        if bad:
            answers.append({"rejected": len(bad)})
        return answers
    except GatewayRefusedError as exc:
        if exc.status in (400, 413, 415):  # the file itself: not what the connector's mapping reads
            raise _Unpushable(f"网关拒收此文件 / the gateway refused this file: {exc}") from None
        raise
    except OSError as exc:
        raise _Unpushable(f"无法读取 / cannot read: {exc.strerror or exc}") from None


async def _push(args: argparse.Namespace, url: str, secret: str, whole_json: bool) -> tuple[dict[str, int], int]:
    totals = {"accepted": 0, "duplicates": 0, "stale": 0, "rejected": 0}
    refused = 0
    async with SupexClient(url, args.connector, secret) as client:
        with progress_bar() as progress:
            task = progress.add_task("pushing", total=None)
            for name in args.files:
                try:
                    answers = await _push_file(client, name, whole_json, args.batch_size)
                except _Unpushable as exc:
                    print(f"supex: {name}: {exc}", file=sys.stderr)
                    refused += 1
                    continue
                for answer in answers:
                    for key in totals:
                        totals[key] += int(answer.get(key, 0))
                    for result in answer.get("results", []):
                        if result.get("status") == "rejected":
                            codes = ", ".join(e.get("code", "") for e in result.get("errors", []))
                            print(f"{name}: record {result.get('index')} id={result.get('record_id')}: rejected "
                                  f"({codes})", file=sys.stderr)
                    progress.update(task, advance=len(answer.get("results", [])))
    return totals, refused


def _credentials(args: argparse.Namespace) -> tuple[str, str, Config | None]:
    """The gateway's address and the connector's secret: from ``--config``, or ``--url`` and the environment."""
    url, secret = args.url, os.environ.get("SUPEX_SECRET_" + args.connector.upper().replace("-", "_"))
    config = None
    if args.config:
        config = load_config(args.config, secrets_of=[args.connector])
        if args.connector not in config.secrets:
            raise ConfigError(f"配置中没有连接器 / no connector {args.connector!r} in {args.config}")
        secret = config.secrets[args.connector]
        url = url or f"http://{config.gateway.listen}"
    if not secret or not url:
        raise ConfigError("需要 --config，或 --url 加 SUPEX_SECRET_<ID> / "
                          "give --config, or --url and SUPEX_SECRET_<ID>")
    return url, secret, config


def _connector_mapping(config: Config | None, connector: str) -> CompiledMapping | None:
    if config is None:
        return None
    name = config.connectors()[connector].mapping_name
    return resolve_mapping(name, config.base_dir) if name else None


def push(args: argparse.Namespace) -> int:
    """``supex push``: sign and push files as a connector, with a progress bar and a summary. A file
    that cannot be pushed (missing, of no known format, refused whole) is named and exits 2."""
    url, secret, config = _credentials(args)
    mapping = _connector_mapping(config, args.connector)
    # a connector whose mapping reads JSON pushes its JSON files as they are: pages, envelopes and all
    whole_json = mapping is not None and mapping.format == "json"
    try:
        totals, refused = asyncio.run(_push(args, url, secret, whole_json))
    except GatewayRefusedError as exc:
        print(f"supex: the gateway refused the push: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"accepted {totals['accepted']}, duplicates {totals['duplicates']}, stale {totals['stale']}, "
          f"rejected {totals['rejected']} / 接收 {totals['accepted']}，重复 {totals['duplicates']}，"
          f"过期 {totals['stale']}，拒收 {totals['rejected']}")
    if refused:
        print(f"supex: {refused} file(s) not pushed / {refused} 个文件未推送", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if totals["rejected"] == 0 else EXIT_INVALID


async def _pull(args: argparse.Namespace, url: str, secret: str, mapping: CompiledMapping | None,
                out: IO[bytes], *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> int:
    """Pages of the inbox written to ``out``; each acknowledged (with ``--ack``) once written and
    flushed. An own format other than JSON is written as one document at the end, then acknowledged."""
    written, after, held, last = 0, None, [], None
    async with SupexClient(url, args.connector, secret) as client:
        while True:
            page = await client.inbox(after, args.limit)
            records, cursor = page["records"], page["next"]
            if records:
                if mapping is None:
                    out.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
                elif mapping.format == "json":
                    write_rows(mapping, reverse_all(mapping, records), out, lines=True)
                else:
                    held += reverse_all(mapping, records)
                out.flush()
                written += len(records)
                if args.ack and (mapping is None or mapping.format == "json"):
                    await client.ack(cursor)
                after = last = cursor
            elif args.follow:
                await sleep(args.every)
            else:
                break
        if held and mapping is not None:
            write_rows(mapping, held, out)
            out.flush()
            if args.ack and last is not None:
                await client.ack(last)
    return written


def pull(args: argparse.Namespace) -> int:
    """``supex pull``: the connector's inbox as NDJSON on standard output (or in its own format),
    acknowledging with ``--ack`` only what was written."""
    url, secret, config = _credentials(args)
    mapping = None
    if args.format == "own":
        mapping = _connector_mapping(config, args.connector)
        if mapping is None or not mapping.reversible:
            raise ConfigError(f"--format own 需要连接器的可逆映射 / --format own needs the connector's reversible "
                              f"mapping (and --config): {args.connector} has {mapping.name if mapping else 'none'}")
        if args.follow and mapping.format != "json":
            raise ConfigError(f"--follow 不能写 {mapping.format.upper()} 文档 / --follow cannot write one "
                              f"{mapping.format.upper()} document: use --format ndjson")
    try:
        written = asyncio.run(_pull(args, url, secret, mapping, sys.stdout.buffer))
    except ValueMappingError as exc:  # a record the connector's own format cannot hold: nothing more acknowledged
        print(f"supex: 无法以连接器格式写出 / cannot write in the connector's format, nothing more acknowledged: {exc}",
              file=sys.stderr)
        return EXIT_INVALID
    except GatewayRefusedError as exc:
        print(f"supex: the gateway refused: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"{written} records{' acknowledged' if args.ack else ' (not acknowledged: use --ack)'} / "
          f"{written} 条记录", file=sys.stderr)
    return EXIT_OK


# ---- policy and dead letters ------------------------------------------------------------------

def policy_explain(args: argparse.Namespace) -> int:
    """``supex policy explain``: which rule applies to a record for a consumer, and what it receives."""
    config = load_config(args.config, need_secrets=False)
    try:
        record = json.loads(Path(args.record).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"无法读取记录文件 / cannot read the record file {args.record}: {exc}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"记录文件应为一个 JSON 对象 / {args.record} must hold one JSON object (a standard record)")
    if args.to not in config.connectors():
        raise ConfigError(f"未知的连接器 / unknown connector {args.to!r} (known: {', '.join(config.connectors())})")
    store = _open_store(config, required=False)
    try:
        policy = policy_in_store(config, store) if store else config.policy()
        catalogue = store.routing.matter_departments if store else (lambda _code: [])
        producer = store.routing.producer if store else (lambda _refers_to: None)
        today = local_today(dt.datetime.now(dt.UTC))
        result = policy.explain(record, args.to, today, catalogue=catalogue, producer=producer)
    finally:
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(_explanation(result))
    return EXIT_OK


def _explanation(result: dict[str, Any]) -> str:
    lines = [f"记录 / record {result['record_id']} ({result['record_type']}) → {result['consumer']}"]
    if not result["routed"]:
        lines.append(f"路由 / routing: 不送达 / not routed — {result['reason']}")
        return "\n".join(lines)
    lines.append(f"路由 / routing: {result['route']}")
    verdict = "共享 / shared" if result["allowed"] else "不共享 / denied"
    lines.append(f"共享 / sharing: {verdict} — {result['reason']}")
    if result.get("purpose"):
        lines.append(f"用途 / purpose: {result['purpose']}")
    if result.get("deliver_within_seconds"):
        lines.append(f"时限 / deliver within: {result['deliver_within_seconds']} s")
    for item in result.get("considered", []):
        lines.append(f"  规则 / rule {item['rule']}: {item['outcome']}")
    if result["allowed"]:
        labels = (("共享字段 / fields", "fields"), ("脱敏 / masked", "masked"), ("不共享 / omitted", "omitted"))
        for label, key in labels:
            if result.get(key):
                lines.append(f"{label}: {', '.join(result[key])}")
        lines.append("接收方将收到 / the consumer receives:")
        lines.append(json.dumps(result["shared"], ensure_ascii=False, indent=2))
    return "\n".join(lines)


def deadletter_list(args: argparse.Namespace) -> int:
    """``supex deadletter list``: deliveries given up on."""
    store = _store(args)
    try:
        rows = store.outbox.dead_letters(args.consumer, args.limit)
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    elif not rows:
        print("没有死信 / no dead letters")
    else:
        for row in rows:
            print(f"{row['consumer']:16} seq {row['seq']:<8} {row['source']}/{row['record_id']} v{row['version']} "
                  f"({row['record_type']}), {row['attempts']} attempts: {row['last_error']}")
    return EXIT_OK


def deadletter_replay(args: argparse.Namespace) -> int:
    """``supex deadletter replay``: send dead letters again (the running gateway picks them up)."""
    store = _store(args)
    try:
        count = store.outbox.replay(args.consumer, args.seq or None, by="supex deadletter replay")
    finally:
        store.close()
    print(f"{count} 条已重新排队 / {count} deliveries queued again")
    return EXIT_OK


# ---- connectors -------------------------------------------------------------------------------

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


def demo(args: argparse.Namespace) -> int:
    """``supex demo``: the scripted tour, with the gateway's own log kept to warnings."""
    configure_logging(logging.WARNING)
    return run_demo(args.keep)


# ---- data keys --------------------------------------------------------------------------------

def keys_generate(args: argparse.Namespace) -> int:
    """``supex keys generate``: a new random data key, printed or written to a new key file (0600)."""
    if args.output is None:
        print(generate_key())
        return EXIT_OK
    try:
        fd = create_private(args.output)
    except FileExistsError:
        raise ConfigError(f"密钥文件已存在，未覆盖 / {args.output} exists and is left as it is: a key file is never "
                          "overwritten (add a new key first in it to rotate; see supex keys rotate)") from None
    except OSError as exc:
        raise ConfigError(f"无法创建密钥文件 / cannot create {args.output}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(generate_key() + "\n")
    print(f"data key written to {args.output} (mode 0600) / 数据密钥已写入", file=sys.stderr)
    return EXIT_OK


def _keyed_store(args: argparse.Namespace) -> Any:
    config = load_config(args.config, secrets_of=())
    if config.data_cipher is None:
        raise ConfigError(f"{args.config}: 未配置数据密钥 / no data key is configured (data_key_env or data_key_file)")
    return _open_store(config, required=True, cipher=config.data_cipher)


def keys_status(args: argparse.Namespace) -> int:
    """``supex keys status``: payloads by the key that seals them."""
    store = _keyed_store(args)
    try:
        status = store.sealed.key_status()
        cipher = store.sealed.cipher
    finally:
        store.close()
    print(f"current key {cipher.current} ({cipher.algorithm}); keys in the ring: {', '.join(cipher.key_ids)}")
    for table, counts in status.items():
        described = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "none"
        print(f"{table}: {described}")
    return EXIT_OK


def keys_rotate(args: argparse.Namespace) -> int:
    """``supex keys rotate``: seal everything again under the current key, resumably, with a progress bar."""
    store = _keyed_store(args)
    try:
        before = store.sealed.key_status()
        current = store.sealed.cipher.current
        total = sum(n for counts in before.values() for key, n in counts.items() if key != current)
        done = 0
        with progress_bar() as progress:
            task = progress.add_task("sealing again", total=total)
            for done in store.sealed.rotate_keys(by="supex keys rotate", batch=args.batch):
                progress.update(task, completed=done)
    finally:
        store.close()
    print(f"{done} payloads sealed again under key {current} / 已用当前密钥重新加密 {done} 条")
    return EXIT_OK
