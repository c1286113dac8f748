"""``supex policy explain`` and ``supex deadletter``: the policy and the outbox, as an admin sees them."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from gateway.cli.common import open_configured_store, store_of
from gateway.config import load_config
from gateway.exceptions import ConfigError
from gateway.flow.in_force import policy_in_store
from gateway.terminal import EXIT_OK
from policy import local_today

__all__ = ["deadletter_list", "deadletter_replay", "policy_explain"]


def policy_explain(args: argparse.Namespace) -> int:
    """``supex policy explain``: which rule applies to a record for a consumer, and what it receives."""
    config = load_config(args.config, need_secrets=False)
    try:
        record = json.loads(Path(args.record).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"无法读取记录文件 / cannot read the record file {args.record}: {exc}") from exc
    if not isinstance(record, dict):
        raise ConfigError(f"记录文件应为一个 JSON 对象 / {args.record} must hold one JSON object (a standard record)")
    if args.to not in config.connectors():
        raise ConfigError(f"未知的连接器 / unknown connector {args.to!r} (known: {', '.join(config.connectors())})")
    store = open_configured_store(config, required=False)
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
    store = store_of(args)
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
    store = store_of(args)
    try:
        count = store.outbox.replay(args.consumer, args.seq or None, by="supex deadletter replay")
    finally:
        store.close()
    print(f"{count} 条已重新排队 / {count} deliveries queued again")
    return EXIT_OK


# ---- connectors -------------------------------------------------------------------------------
