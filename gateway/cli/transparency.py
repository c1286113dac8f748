"""The verifiable log from the command line: the log key made, shown and rotated (``supex keys
create|show|rotate --log``), receipts checked offline (``supex log check-receipt``), closed ranges
of the log archived as self-verifying bundles (``supex log archive``, ``supex log check-archive``),
and a witness that cosigns a gateway's checkpoints while they stay consistent (``supex witness``)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from gateway.cli.common import audited, configured_store, open_configured_store
from gateway.config import load_config
from gateway.exceptions import ConfigError
from gateway.exchange_log import LogEntry, moment_text
from gateway.flow.checkpoints import load_log_key
from gateway.merkle import compact, fold, hash_function, leaf_hash, range_nodes
from gateway.signing import (
    LogKey,
    checkpoint_text,
    cosign,
    open_signed,
    retired_keys,
    verify_with,
    witness_verifier,
)
from gateway.store.base import create_private
from gateway.store.log import PRUNE_UNIT
from gateway.store.sql import SQLStore
from gateway.store.tree import SignedCheckpoint
from gateway.terminal import EXIT_INVALID, EXIT_OK, progress_bar
from gateway.verify_receipt import (
    Checkpoint,
    ReceiptError,
    VerifierKey,
    canonical_entry,
    check_receipt,
    consistency_hashes,
    read_json,
    read_note,
    verify_consistency,
)

__all__ = ["Bundle", "check_bundle", "keys_create", "keys_rotate_log", "keys_show", "log_archive", "log_check_archive",
           "log_check_receipt", "log_prune", "witness"]

EXIT_ALERT = 3  # a witness saw a checkpoint inconsistent with the one it cosigned before


def keys_create(args: argparse.Namespace) -> int:
    """``supex keys create``: the log key of a configuration, or a witness's key (``--witness``)."""
    if args.witness:
        if args.output is None:
            raise ConfigError("--witness 需要 --output / --witness needs --output FILE for the witness's key")
        key = LogKey.new(args.witness, "ed25519")
        _save(key, args.output)
        print(f"witness key written to {args.output} (mode 0600) / 见证人密钥已写入")
        print(f"its verifier key, for the gateway's [[log.witness]]: {witness_verifier(key)}")
        return EXIT_OK
    if args.config is None:
        raise ConfigError("需要 --config / --config FILE is required (or --witness NAME --output FILE)")
    config = load_config(args.config, secrets_of=())
    algorithm = args.algorithm or config.log.signature
    if algorithm != config.log.signature:
        raise ConfigError(f"[log] signature 为 {config.log.signature} / [log] signature is {config.log.signature}: set "
                          f"it to {algorithm} first, so that the gateway uses the key it is given")
    key = LogKey.new(config.log.origin, algorithm)
    _save(key, config.key_path())
    print(f"log key ({algorithm}) written to {config.key_path()} (mode 0600) / 日志签名密钥已写入")
    print(f"publish its verifier key: {key.verifier}")
    return EXIT_OK


def keys_show(args: argparse.Namespace) -> int:
    """``supex keys show``: the log's verifier key (public), and those it signed with before."""
    config = load_config(args.config, secrets_of=())
    key = load_log_key(config)
    shown = {"origin": key.name, "algorithm": key.algorithm, "key_id": key.key_id.hex(), "created": key.created,
             "verifier_key": key.verifier, "retired": retired_keys(config.key_path()),
             "log_hash": config.gateway.log_hash}
    print(json.dumps(shown, ensure_ascii=False, indent=2) if args.json else key.verifier)
    return EXIT_OK


def keys_rotate_log(args: argparse.Namespace) -> int:
    """``supex keys rotate --log``: a new log key; the old one's verifier key listed as retired
    (published beside the new one, so that checkpoints signed before stay checkable)."""
    config = load_config(args.config, secrets_of=())
    path = config.key_path()
    old = load_log_key(config)
    listed = path.with_name(path.name + ".retired")
    with listed.open("a", encoding="utf-8") as file:
        file.write(old.verifier + "\n")
    path.rename(path.with_name(f"{path.name}.{old.key_id.hex()}.old"))
    new = LogKey.new(config.log.origin, config.log.signature)
    _save(new, path)
    store = open_configured_store(config, required=False)
    if store is not None:  # a store yet to be made has nothing signed to tell of it
        try:
            store.log.append([LogEntry("config_changed", store.now(), counterpart=f"cli:{getpass.getuser()}",
                                       rule="log-key", reason=f"log key rotated: {old.key_id.hex()} retired, "
                                       f"{new.key_id.hex()} in use")])
        finally:
            store.close()
    print(f"new log key {new.key_id.hex()} in {path}; the old one ({old.key_id.hex()}) is retired / 日志签名密钥已轮换")
    print(f"publish: {new.verifier}")
    print("restart the gateways on this store so that they sign with it")
    return EXIT_OK


def _save(key: LogKey, path: Path) -> None:
    try:
        key.save(path)
    except FileExistsError:
        raise ConfigError(f"密钥文件已存在 / {path} exists: a key is never overwritten (`supex keys rotate --log` "
                          "replaces the log key)") from None


# ---- receipts ---------------------------------------------------------------------------------------

def log_check_receipt(args: argparse.Namespace) -> int:
    """``supex log check-receipt``: a receipt checked offline against the log's verifier key."""
    try:
        receipt = read_json(args.receipt)
        key = VerifierKey(args.key)
        older = read_note(args.older) if args.older is not None else None
        answer = read_json(args.proof) if args.proof else None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"无法读取回执 / cannot read the receipt {args.receipt}: {exc}") from None
    except ReceiptError as exc:
        raise ConfigError(str(exc)) from None
    algorithm = receipt.get("log_hash") if isinstance(receipt, dict) else None
    if algorithm not in ("sm3", "sha256"):
        raise ConfigError(f"回执未注明日志的哈希算法 / the receipt {args.receipt} names its log's hash as "
                          f"{str(algorithm)[:40]!r}, not sm3 or sha256: is it a receipt as "
                          "GET /v1/records/{id}/receipt answers it?")
    h = hash_function(algorithm)
    try:
        checkpoint = check_receipt(receipt, key, h, verify_with)
        if older is not None:
            earlier = open_signed(older, key)
            proof = consistency_hashes(answer)
            if not verify_consistency(h, earlier.size, checkpoint.size, earlier.root, checkpoint.root, proof):
                raise ReceiptError(f"the log of {checkpoint.size} entries does not extend the checkpoint of "
                                   f"{earlier.size} you kept: it was rewritten")
    except ReceiptError as exc:
        print(f"NOT VERIFIED: {exc} / 回执验证失败")
        return EXIT_INVALID
    entry = receipt["entry"]
    print(f"verified: entry {entry['seq']} ({entry.get('event')}, record {entry.get('record_id')}, "
          f"{entry.get('at')}) is in the log {checkpoint.origin} of {checkpoint.size} entries / 回执有效")
    return EXIT_OK


# ---- archives ---------------------------------------------------------------------------------------

def log_archive(args: argparse.Namespace) -> int:
    """``supex log archive --until SEQ DIR``: entries after the last archive up to ``SEQ`` written
    as a bundle that verifies by itself: the entries, the subtrees of the tree before them, and a
    checkpoint of the tree of exactly ``SEQ`` entries signed with the log key."""
    config, store = configured_store(args)
    try:
        key = load_log_key(config)
        size = store.tree.size()
        until = args.until
        if not 1 <= until <= size:
            raise ConfigError(f"--until 应在 1 到 {size} 之间 / --until must be from 1 to the log's size, {size}")
        folder: Path = args.folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        first = _archived_until(folder) + 1
        if first <= (pruned := store.log.pruned()[0]):
            raise ConfigError(f"第 1 至 {pruned} 条已归档并删除 / entries 1-{pruned} were archived and pruned from the "
                              f"store: archive into the folder that holds their bundles, not {folder}")
        if first > until:
            raise ConfigError(f"{folder} 已归档到 {first - 1} / {folder} holds the log up to seq {first - 1} already")
        signed = store.tree.checkpoint(until)
        if signed is None:
            root = store.tree.root(until)
            note = key.sign_note(checkpoint_text(key.name, until, root, store.clock()))
            signed = SignedCheckpoint(until, store.now(), key.verifier, note)
            if not store.tree.keep_checkpoint(signed, retired=retired_keys(config.key_path())):
                raise ConfigError("日志由另一密钥签名 / the log is signed by another key than this configuration's: "
                                  "use the log key of the gateways on this store")
        border = [value for *_, value in store.tree.border(first - 1)]
        bundle = folder / f"log-{first:012d}-{until:012d}"
        bundle.mkdir(mode=0o700)
        with progress_bar() as progress, (bundle / "entries.ndjson").open("wb") as out:
            task = progress.add_task("archiving", total=until - first + 1)
            for n, entry in enumerate(store.log.entries(after=first - 1, limit=until - first + 1), 1):
                out.write(orjson.dumps({**entry.content(), "prev_hash": entry.prev_hash, "hash": entry.hash}) + b"\n")
                if n % 1000 == 0:
                    progress.update(task, completed=n)
            progress.update(task, completed=until - first + 1)
        manifest = {"origin": key.name, "log_hash": store.log_hash, "first": first, "until": until,
                    "verifier_key": key.verifier, "left_border": [h.hex() for h in border],
                    "checkpoint": signed.note}
        (bundle / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        audited(store, args, f"log archive to seq {until}")
    finally:
        store.close()
    print(f"archived entries {first}-{until} to {bundle}; check it with: supex log check-archive {bundle} --key "
          f"'{key.verifier}' / 归档完成")
    return EXIT_OK


def _archived_until(folder: Path) -> int:
    return max((span[1] for p in folder.glob("log-*-*") if (span := _bundle_span(p))), default=0)


def log_check_archive(args: argparse.Namespace) -> int:
    """``supex log check-archive BUNDLE --key KEY``: a bundle verified by itself — its checkpoint's
    signature, each entry's hash, and the root the entries make with the subtrees before them."""
    try:
        first, until, checkpoint, _ = check_bundle(args.bundle, args.key)
    except ReceiptError as exc:
        print(f"NOT VERIFIED: {exc} / 归档验证失败")
        return EXIT_INVALID
    print(f"verified: entries {first}-{until} of {checkpoint.origin}, signed at size {until} / 归档有效")
    return EXIT_OK


class Bundle(NamedTuple):
    """What a bundle of the archive holds, verified: its entries' first and last seq, its
    checkpoint and the verifier key that signed it."""

    first: int
    until: int
    checkpoint: Checkpoint
    signer: str


def check_bundle(bundle: Path, key: str | None = None) -> Bundle:
    """Verify an archived bundle by itself, its checkpoint signed with the verifier ``key`` (by
    default the key its manifest names). ``ReceiptError`` saying what does not hold, ``ConfigError``
    if it cannot be read."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        h = hash_function(manifest["log_hash"])
        signer = str(key or manifest["verifier_key"])
        checkpoint = open_signed(manifest["checkpoint"], VerifierKey(signer))
        first, until = int(manifest["first"]), int(manifest["until"])
        stack = [(level, i, bytes.fromhex(x)) for (level, i), x in
                 zip(range_nodes(0, first - 1), manifest["left_border"], strict=True)]
        expected, prev = first, None
        with (bundle / "entries.ndjson").open("rb") as entries:
            for line in entries:
                entry = orjson.loads(line)
                if orjson.dumps(entry) != line.rstrip(b"\r\n"):  # a field twice: which one would a reader see?
                    raise ReceiptError(f"entry {expected} is not as the archive wrote it: its line was rewritten "
                                       "or names a field twice")
                leaf = leaf_hash(h, canonical_entry(entry))
                if entry["seq"] != expected or (prev is not None and entry["prev_hash"] != prev):
                    raise ReceiptError(f"entry {expected} is missing or out of place")
                if leaf.hex() != entry["hash"] and h(entry["prev_hash"].encode() + canonical_entry(entry)).hex() != \
                        entry["hash"]:
                    raise ReceiptError(f"entry {expected} does not match its hash (changed)")
                compact(h, stack, [leaf], expected - 1)
                expected, prev = expected + 1, entry["hash"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ConfigError(f"无法读取归档 / cannot read the archive {bundle}: {exc}") from None
    if expected != until + 1:
        raise ReceiptError(f"the bundle ends at {expected - 1}, its manifest says {until}")
    if checkpoint.size != until or fold(h, [n[2] for n in stack]) != checkpoint.root:
        raise ReceiptError("the entries do not make the tree its checkpoint signs (altered)")
    return Bundle(first, until, checkpoint, signer)


def log_prune(args: argparse.Namespace) -> int:
    """``supex log prune --archive FOLDER``: delete from the store the entries that the folder's
    bundles hold — each verified, signed with the log's key and its root the store's tree at its
    size — and that are older than ``[log] retain_days`` (or ``--retain-days``): whole tiles of 256
    entries, never the last. Proofs, checkpoints and receipts issued stay checkable."""
    config, store = configured_store(args)
    try:
        days = config.log.retain_days if args.retain_days is None else args.retain_days
        if days is None:
            raise ConfigError("未设置保留天数 / set [log] retain_days (or --retain-days DAYS): entries are pruned only "
                              "once older than that")
        start, _ = store.log.pruned()
        keys = {load_log_key(config).verifier, *retired_keys(config.key_path())}
        archived, bundle = _archived_through(store, args.archive, start, keys)
        cutoff = store.clock() - dt.timedelta(days=days)
        old = store.log.last_before(moment_text(cutoff))
        head = store.log.head()[0]
        through = min(archived, old, head - 1) // PRUNE_UNIT * PRUNE_UNIT
        why = (f"archived in {args.archive} through seq {archived}, older than {days} days through {old}, "
               f"the head {head} kept, in whole tiles of {PRUNE_UNIT}")
        if through <= start:
            print(f"nothing to prune: entries up to {start} are pruned already ({why}) / 没有可删除的条目")
            return EXIT_OK
        if args.dry_run:
            print(f"would prune entries {start + 1}-{through} ({why}) / 试运行，未删除")
            return EXIT_OK
        with progress_bar() as progress:
            task = progress.add_task("pruning", total=through - start)
            store.log.prune(through, bundle, done=lambda n: progress.update(task, completed=n))
        audited(store, args, f"log prune through seq {through} (archived in {bundle})")
    finally:
        store.close()
    print(f"pruned entries {start + 1}-{through} ({why}); entries {through + 1}-{head} stay in the store / "
          "已删除已归档的条目")
    return EXIT_OK


def _archived_through(store: SQLStore, folder: Path, start: int, keys: set[str]) -> tuple[int, str]:
    """How far the bundles of ``folder`` hold the log without a gap from its first entry, and the
    name of the last: those after ``start`` each verified by ``check_bundle``, signed with one of
    ``keys`` and signing the store's own tree at their size. ``ConfigError`` otherwise."""
    bundles = sorted((span, p) for p in folder.glob("log-*-*") if p.is_dir() and (span := _bundle_span(p)))
    reach, last = 0, ""
    for (first, until), bundle in bundles:
        if first != reach + 1:
            break
        if until > start:
            try:
                checked = check_bundle(bundle)
            except ReceiptError as exc:
                raise ConfigError(f"归档未通过验证 / the bundle {bundle} does not verify: {exc}") from None
            if checked.signer not in keys:
                raise ConfigError(f"归档不是本日志的 / the bundle {bundle} is signed by {checked.signer}, not by this "
                                  "log's key")
            if (checked.first, checked.until) != (first, until):
                raise ConfigError(f"归档名称与内容不符 / the bundle {bundle} holds entries {checked.first}-"
                                  f"{checked.until}, not what its name says")
            if until > store.tree.size() or store.tree.root(until) != checked.checkpoint.root:
                raise ConfigError(f"归档与本日志不符 / the bundle {bundle} is not of this store's log: its tree at "
                                  f"size {until} differs")
        reach, last = until, bundle.name
    if reach <= start:
        raise ConfigError(f"{folder} 中没有新的归档 / {folder} holds no bundle of the log after seq {start} (from "
                          f"seq 1 without a gap): write one first with 'supex log archive --until SEQ {folder}'")
    return reach, last


def _bundle_span(bundle: Path) -> tuple[int, int] | None:
    """The first and last seq a bundle's name gives (``log-FIRST-UNTIL``), ``None`` for another name."""
    parts = bundle.name.split("-")
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


# ---- the witness ------------------------------------------------------------------------------------

_ANSWER_LIMIT = 1 << 20  # bytes of a gateway's answer a witness reads


class _Unreachable(Exception):  # noqa: N818 - a state of the gateway, not an error of the witness
    """The gateway did not answer, or answered that it cannot now (5xx, 429): worth asking again."""


class _Gateway:
    """The gateway a witness watches, over HTTP with an auditor's token."""

    def __init__(self, url: str, token: str) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--gateway 应为 http(s) 地址 / --gateway must be an http:// or https:// URL: {url!r}")
        self.url, self.token = url.rstrip("/"), token

    def get(self, path: str) -> Any:
        return self._call(urllib.request.Request(self.url + path, headers=self._auth()))  # noqa: S310 - http(s)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call(urllib.request.Request(self.url + path, data=json.dumps(body).encode(),  # noqa: S310
                                                 method="POST",
                                                 headers={**self._auth(), "Content-Type": "application/json"}))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @staticmethod
    def _call(request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - the configured gateway
                body = answer.read(_ANSWER_LIMIT + 1)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500 or exc.code == 429:  # overloaded, or its store unavailable: for now
                raise _Unreachable from exc
            raise  # refused: the token or the URL is wrong
        except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            raise _Unreachable from exc  # no connection, no answer in time, an answer cut off
        if len(body) > _ANSWER_LIMIT:  # a checkpoint or a proof is a few kilobytes
            raise ValueError(f"an answer of over {_ANSWER_LIMIT} bytes to {request.full_url}")
        value = json.loads(body)
        if not isinstance(value, dict):
            raise ValueError(f"{request.full_url} answered {type(value).__name__}, not a JSON object")
        return value


def witness(args: argparse.Namespace, *, sleep: Callable[[float], None] = time.sleep) -> int:
    """``supex witness``: poll a gateway's checkpoint; cosign each that is consistent with the last
    one cosigned (by a consistency proof), and return the cosignature; on one that is not, keep
    both as evidence, refuse, alert and exit 3."""
    token = os.environ.get(args.token_env, "")
    if not token:
        raise ConfigError(f"环境变量 {args.token_env} 未设置 / {args.token_env} must hold the auditor token the "
                          "witness calls the gateway with")
    key = LogKey.load(args.key)
    try:
        log_key = VerifierKey(args.log_key)
    except ReceiptError as exc:
        raise ConfigError(f"--log-key 无效 / --log-key: {exc} (the watched gateway's `supex keys show` prints it)") \
            from None
    gateway = _Gateway(args.gateway, token)
    state_dir: Path = args.state
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    while True:
        try:
            verdict = _witness_once(gateway, key, log_key, state_dir, args.log_hash)
        except _Unreachable as exc:  # a gateway down or overloaded for a while: watched on, not left
            again = "" if args.once else f", trying again in {args.every:g} s"
            print(f"witness: the gateway cannot be reached now{again}: {exc.__cause__} / 网关暂时无法访问",
                  file=sys.stderr)
            _metrics(state_dir, None, 0, unreachable=1)
            if args.once:
                return EXIT_INVALID
        else:
            if verdict != EXIT_OK or args.once:
                return verdict
        sleep(args.every)


def _witness_once(gateway: _Gateway, key: LogKey, log_key: VerifierKey, state_dir: Path, log_hash: str) -> int:
    state_file = state_dir / "cosigned.txt"
    try:
        published = gateway.get("/v1/audit/checkpoint")
        note = str(published["checkpoint"])
        checkpoint = open_signed(note, log_key)
        last = state_file.read_text(encoding="utf-8") if state_file.exists() else None
        if last is not None:
            earlier = open_signed(last, log_key)
            if checkpoint.size < earlier.size or (checkpoint.size == earlier.size and checkpoint.root != earlier.root):
                return _alert(state_dir, last, note, "the log shrank or its root changed at the same size", key)
            if checkpoint.size == earlier.size:
                _metrics(state_dir, checkpoint.size, 0)
                return EXIT_OK  # nothing new to cosign
            proof = gateway.get(f"/v1/audit/proof/consistency?first={earlier.size}&second={checkpoint.size}")
            hashes = [bytes.fromhex(p) for p in proof["proof"]]
            if not verify_consistency(hash_function(log_hash), earlier.size, checkpoint.size, earlier.root,
                                      checkpoint.root, hashes):
                return _alert(state_dir, last, note, "no consistency proof: the log was rewritten (a fork)", key)
        line = cosign(key, note, dt.datetime.now(dt.UTC))
        gateway.post("/v1/audit/cosignatures", {"tree_size": checkpoint.size, "cosignature": line})
    except ReceiptError as exc:
        print(f"witness: the checkpoint does not verify: {exc} / 检查点签名无效", file=sys.stderr)
        return EXIT_INVALID
    except (OSError, ValueError, KeyError, TypeError) as exc:  # a refusal (4xx) among them
        print(f"witness: the gateway did not answer usefully: {exc} / 网关无应答", file=sys.stderr)
        return EXIT_INVALID
    _write(state_file, note)
    _metrics(state_dir, checkpoint.size, 0)
    print(f"cosigned the checkpoint of {checkpoint.size} entries of {checkpoint.origin} / 已见证")
    return EXIT_OK


def _alert(state_dir: Path, last: str, seen: str, why: str, key: LogKey) -> int:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    evidence = state_dir / f"evidence-{stamp}"
    evidence.mkdir(mode=0o700)
    (evidence / "cosigned-before.txt").write_text(last, encoding="utf-8")
    (evidence / "seen-now.txt").write_text(seen, encoding="utf-8")
    (evidence / "why.txt").write_text(why + "\n", encoding="utf-8")
    _metrics(state_dir, None, 1)
    print(f"ALERT: {why}; not cosigned; both checkpoints kept in {evidence} / 检查点不一致，拒绝见证", file=sys.stderr)
    return EXIT_ALERT


def _write(path: Path, text: str) -> None:
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    with os.fdopen(create_private(fresh), "w", encoding="utf-8") as file:
        file.write(text)
    fresh.replace(path)


def _metrics(state_dir: Path, size: int | None, inconsistent: int, *, unreachable: int = 0) -> None:
    """The witness's figures as a Prometheus text file (for a node exporter's textfile collector):
    the counters carried over from the file, the size last cosigned kept unless a new one is given,
    and whether the gateway answered the last poll."""
    path = state_dir / "witness.prom"
    before: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(" ")
            if line.startswith("#") or not name:
                continue
            try:
                before[name] = int(float(value))
            except (ValueError, OverflowError):  # a file changed by hand: that figure starts again
                print(f"witness: {path} holds {line[:80]!r}, not a figure; {name} starts from 0 / 指标文件有误",
                      file=sys.stderr)
    total = {name: before.get(name, 0) + added for name, added in
             (("supex_witness_inconsistent_total", inconsistent), ("supex_witness_unreachable_total", unreachable))}
    lines = ["# HELP supex_witness_inconsistent_total Checkpoints refused as inconsistent with the one cosigned",
             "# TYPE supex_witness_inconsistent_total counter",
             f"supex_witness_inconsistent_total {total['supex_witness_inconsistent_total']}",
             "# HELP supex_witness_unreachable_total Polls the gateway did not answer (down, overloaded)",
             "# TYPE supex_witness_unreachable_total counter",
             f"supex_witness_unreachable_total {total['supex_witness_unreachable_total']}",
             "# HELP supex_witness_gateway_up Whether the gateway answered the last poll",
             "# TYPE supex_witness_gateway_up gauge", f"supex_witness_gateway_up {0 if unreachable else 1}"]
    cosigned = size if size is not None else before.get("supex_witness_cosigned_size")
    if cosigned is not None:
        lines += ["# HELP supex_witness_cosigned_size The tree size last cosigned",
                  "# TYPE supex_witness_cosigned_size gauge", f"supex_witness_cosigned_size {cosigned}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
