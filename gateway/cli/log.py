"""``supex log``: the exchange log verified, checkpointed, queried and exported."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from gateway.cli.common import audited, configured_store, log_filter, store_of
from gateway.exceptions import ConfigError
from gateway.exchange_log import ChainCheck, against_checkpoint
from gateway.flow.checkpoints import held_to_tree, load_log_key
from gateway.signing import retired_keys
from gateway.store.model import LogFilter
from gateway.store.sql import SQLStore
from gateway.terminal import EXIT_INVALID, EXIT_OK, progress_bar
from gateway.verify_receipt import VerifierKey

__all__ = ["log_checkpoint", "log_export", "log_query", "log_verify"]


def log_verify(args: argparse.Namespace) -> int:
    """``supex log verify``: recompute every entry's hash and the tree they make, and hold it to the
    tree proofs are served from and to the latest signed checkpoint; exit 1 naming the first bad
    entry."""
    config, store = configured_store(args)
    try:
        total = store.log.head()[0] - store.log.pruned()[0]
        outcome = ChainCheck(True, 0)
        with progress_bar() as progress:
            task = progress.add_task("verifying", total=total)
            for outcome in store.log.verify():
                progress.update(task, completed=outcome.entries)
        key = VerifierKey(load_log_key(config).verifier) if config.key_path().exists() else None
        outcome = held_to_tree(store, outcome, key, retired_keys(config.key_path()))
        if args.checkpoint:
            outcome = against_checkpoint(outcome, args.checkpoint, recorded_hash(store, args.checkpoint[0]))
        if outcome.ok:  # a broken log takes no more entries until it is looked into
            audited(store, args, "log verify")
    finally:
        store.close()
    if args.json:
        print(json.dumps({"ok": outcome.ok, "entries": outcome.entries, "archived": outcome.archived,
                          "first_bad_seq": outcome.first_bad_seq, "reason": outcome.reason}))
    elif outcome.ok:
        archived = (f" after the {outcome.archived} archived and pruned (check their bundles with "
                    "'supex log check-archive')") if outcome.archived else ""
        print(f"OK: {outcome.entries} entries{archived}, head {outcome.head} / 日志完整")
    else:
        print(f"BROKEN at seq {outcome.first_bad_seq}: {outcome.reason} ({outcome.entries} entries before it verified)"
              f" / 日志在第 {outcome.first_bad_seq} 条被篡改")
    return EXIT_OK if outcome.ok else EXIT_INVALID


def recorded_hash(store: SQLStore, seq: int) -> str | None:
    """The hash the log holds at ``seq`` to compare with a head recorded then: an archived and
    pruned entry's from the tree, whose leaf it is (``None``: the log ends before ``seq``)."""
    if seq > store.log.pruned()[0]:
        return store.log.hash_at(seq)
    if seq <= store.log.chained():
        raise ConfigError(f"第 {seq} 条已归档并从存储中删除 / entry {seq} was archived and pruned, and its hash was "
                          "a chain's, not its leaf: hold the recorded head to its archive bundle instead")
    return store.tree.hashes([(seq - 1, seq)])[0].hex()


def log_checkpoint(args: argparse.Namespace) -> int:
    """``supex log checkpoint``: print the head hash and the tree's root, to record outside the
    system, with the latest checkpoint signed with the log key."""
    store = store_of(args)
    try:
        seq, head = store.log.head()
        root = store.tree.root(seq).hex() if seq else None
        signed = store.tree.checkpoint()
    finally:
        store.close()
    print(json.dumps({"seq": seq, "hash": head, "algorithm": store.log_hash, "checkpoint": f"{seq}:{head}",
                      "tree_size": seq, "root": root, "signed": signed.note if signed else None},
                     ensure_ascii=False))
    return EXIT_OK


def _streamed(store: Any, where: LogFilter, what: str, limit: int | None = None) -> Iterator[Any]:
    """The entries a query selects, with a progress bar of how far through the log it has read."""
    total = store.log.head()[0]
    with progress_bar() as progress:
        task = progress.add_task(what, total=total)
        for n, entry in enumerate(store.log.entries(where=where, limit=limit), 1):
            if n % 1000 == 0:
                progress.update(task, completed=entry.seq)
            yield entry
        progress.update(task, completed=total)


def log_query(args: argparse.Namespace) -> int:
    """``supex log query``: filtered entries as a table or JSON lines."""
    config, store = configured_store(args)
    try:
        where = log_filter(args, config, store)
        audited(store, args, "log query")
        for entry in _streamed(store, where, "querying", args.limit):
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
    config, store = configured_store(args)
    out = sys.stdout.buffer
    try:
        where = log_filter(args, config, store)
        audited(store, args, "log export")
        for entry in _streamed(store, where, "exporting"):
            out.write(orjson.dumps(entry.content() | {"prev_hash": entry.prev_hash, "hash": entry.hash}) + b"\n")
    finally:
        store.close()
    out.flush()
    return EXIT_OK
