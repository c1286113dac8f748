"""``supex push`` and ``supex pull``: a connector's records to and from a gateway."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from connectors import GatewayRefusedError, SupexClient
from gateway.config import Config, load_config, resolve_mapping
from gateway.exceptions import ConfigError
from gateway.terminal import EXIT_INVALID, EXIT_OK, EXIT_USAGE, counted, progress_bar
from mappings import CompiledMapping
from mappings.exceptions import ValueMappingError
from mappings.formats import read_json
from mappings.media import FILE_TYPES
from mappings.pipeline import reverse_all, write_rows

__all__ = ["pull", "push"]


class _Unpushable(Exception):  # noqa: N818 - a file refused before or by the gateway: exit 2, the others go on
    pass


def rejection(name: str, result: dict[str, Any]) -> str:
    """One rejected record as a person can act on it: where it is, its id, and each error the
    gateway gave — the JSON pointer, the message in both languages, the code."""
    record_id = result.get("record_id")
    errors = "; ".join(f"{e.get('path') or '(record)'}: {e.get('message') or e.get('code')} [{e.get('code')}]"
                       for e in result.get("errors", [])) or "rejected"
    return f"{name}: record {result.get('index')}" + (f" (id {record_id})" if record_id else "") + f": {errors}"


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
        raise _Unpushable(f"无法读取 / cannot read: {exc.strerror or exc}") from exc


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
                    if args.json:
                        print(json.dumps({"file": name, **answer}, ensure_ascii=False))
                    else:
                        for result in answer.get("results", []):
                            if result.get("status") == "rejected":
                                print(rejection(name, result), file=sys.stderr)
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
        print(f"supex: {counted(refused, 'file')} not pushed / {refused} 个文件未推送", file=sys.stderr)
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
