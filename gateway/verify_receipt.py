#!/usr/bin/env python3
"""Check a supex exchange-log receipt (回执) with nothing but the Python standard library.

A receipt is what ``GET /v1/records/{record_id}/receipt`` answers: one exchange-log entry, its
inclusion proof (RFC 9162 §2.1.3) and the signed checkpoint (C2SP signed note) of the tree it is
proved against. This file checks, with no other software than Python 3.9 or later:

1. the checkpoint is signed by the log key you hold (Ed25519, ``name+id+key`` as ``supex keys
   show`` prints it);
2. the entry's leaf hash, ``SHA-256(0x00 || canonical JSON of the entry)``, is leaf ``seq - 1``
   of the tree whose root the checkpoint signs, by its audit path.

Usage::

    python3 verify_receipt.py RECEIPT.json --key 'supex.example/log+1a2b3c4d+AW...'
    python3 verify_receipt.py RECEIPT.json --key KEY --older OLD-CHECKPOINT.txt --proof CONSISTENCY.json

The exit status is 0 when the receipt holds, 1 when it does not (the reason printed), 2 when
the files cannot be read, or could be read two ways (a field named twice in one object). A
byte-order mark, and Windows line ends in a kept checkpoint, are undone. Logs hashed with SM3,
or signed with SM2, are checked by ``supex log check-receipt``; the functions here take any hash,
for that command's sake.

This file is self-contained on purpose: copy it where you like.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["Checkpoint", "ReceiptError", "VerifierKey", "canonical_entry", "check_receipt", "consistency_hashes",
           "ed25519_verify", "open_checkpoint", "parse_checkpoint", "parse_note", "read_json", "read_note",
           "verify_consistency", "verify_inclusion"]

Hash = Callable[[bytes], bytes]
ED25519, SM2 = "ed25519", "sm2"
SM2_TYPE = b"\xffsm2"  # signature type 0xff, then a longer name (signed-note: no byte assigned to SM2)


class ReceiptError(Exception):
    """A receipt, checkpoint or proof that does not hold; the message says what and where."""


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---- RFC 9162 §2.1.3.2 and §2.1.4.2 ---------------------------------------------------------------

def verify_inclusion(h: Hash, index: int, size: int, leaf: bytes, path: Sequence[bytes],  # noqa: PLR0917 - RFC 9162's
                     root: bytes) -> bool:
    """Whether ``path`` proves ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h(b"\x01" + p + r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = h(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(h: Hash, first: int, second: int, first_root: bytes, second_root: bytes,  # noqa: PLR0917
                       proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree of ``second`` leaves with ``second_root`` extends the tree
    of ``first`` leaves with ``first_root``."""
    if first == second:
        return not proof and first_root == second_root
    if not 0 < first < second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = h(b"\x01" + c + fr), h(b"\x01" + c + sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = h(b"\x01" + sr + c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# ---- Ed25519 verification (RFC 8032 §5.1.7), in integers ----------------------------------------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
Point = tuple[int, int, int, int]  # extended coordinates X, Y, Z, T


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % _P, (y1 + x1) * (y2 + x2) % _P
    cc, dd = 2 * _D * t1 * t2 % _P, 2 * z1 * z2 % _P
    e, f, g, hh = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % _P, g * hh % _P, f * g % _P, e * hh % _P


def _times(n: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while n:
        if n & 1:
            result = _add(result, point)
        point, n = _add(point, point), n >> 1
    return result


def _decode(data: bytes) -> Point | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return None
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P != u:
        x = x * _SQRT_M1 % _P
        if v * x * x % _P != u:
            return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y, 1, x * y % _P


_BASE = _decode((4 * pow(5, _P - 2, _P) % _P).to_bytes(32, "little"))


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    point_a = _decode(public_key)
    if point_a is None or len(signature) != 64 or _BASE is None:
        return False
    point_r = _decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if point_r is None or s >= _L:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little") % _L
    left, right = _times(s, _BASE), _add(point_r, _times(k, point_a))
    return (left[0] * right[2] - right[0] * left[2]) % _P == 0 and (left[1] * right[2] - right[1] * left[2]) % _P == 0


# ---- signed notes and checkpoints (C2SP signed-note, tlog-checkpoint) -------------------------------

class VerifierKey:
    """A log's public key as ``name+hexid+base64(type || key)`` (C2SP vkey)."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        parts = self.text.split("+", 2)
        if len(parts) != 3 or not parts[0]:
            raise ReceiptError(f"not a verifier key (name+id+key): {text[:80]!r}")
        self.name = parts[0]
        try:
            self.key_id = bytes.fromhex(parts[1])
            raw = base64.b64decode(parts[2], validate=True)
        except ValueError:
            raise ReceiptError(f"the verifier key {text[:80]!r} is not hex and base64") from None
        if len(self.key_id) != 4:
            raise ReceiptError("a verifier key's id is 4 bytes (8 hex digits)")
        if raw[:1] == b"\x01" and len(raw) == 33:
            self.algorithm, self.public_key, kind = ED25519, raw[1:], raw[:1]
        elif raw.startswith(SM2_TYPE) and len(raw) == len(SM2_TYPE) + 64:
            self.algorithm, self.public_key, kind = SM2, raw[len(SM2_TYPE):], SM2_TYPE
        else:
            raise ReceiptError("the verifier key is neither Ed25519 (type 0x01) nor SM2")
        if sha256(self.name.encode() + b"\n" + kind + self.public_key)[:4] != self.key_id:
            raise ReceiptError(f"the verifier key's id does not match its name and key: {text[:80]!r}")


def parse_note(text: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """A signed note's text and its signatures as ``(key name, key id, signature)``."""
    body, sep, signatures = text.rpartition("\n\n")
    if not sep or not body:
        raise ReceiptError("not a signed note: no blank line before the signatures")
    found = []
    for line in signatures.split("\n"):
        if not line:
            continue
        if not line.startswith("\u2014 "):
            raise ReceiptError(f"not a signature line: {line[:80]!r}")
        name, _, encoded = line[2:].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise ReceiptError(f"a signature of {name!r} is not base64") from None
        if len(raw) < 5:
            raise ReceiptError(f"a signature of {name!r} is too short")
        found.append((name, raw[:4], raw[4:]))
    return body + "\n", found


class Checkpoint:
    """A checkpoint's origin, tree size, root hash and extension lines (``time …``)."""

    def __init__(self, origin: str, size: int, root: bytes, extensions: Sequence[str], text: str) -> None:
        self.origin, self.size, self.root, self.extensions, self.text = origin, size, root, list(extensions), text


def parse_checkpoint(body: str) -> Checkpoint:
    """The checkpoint a note's text holds."""
    lines = body.rstrip("\n").split("\n")
    if len(lines) < 3 or not (lines[1].isascii() and lines[1].isdigit()):
        raise ReceiptError("not a checkpoint: origin, tree size and root hash expected")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise ReceiptError("the checkpoint's root hash is not base64") from None
    return Checkpoint(lines[0], int(lines[1]), root, lines[3:], body)


def open_checkpoint(text: str, key: VerifierKey,
                    verify: Callable[[VerifierKey, bytes, bytes], bool] | None = None) -> Checkpoint:
    """The checkpoint of a signed note that ``key`` signed (``ReceiptError`` otherwise). ``verify``
    checks a signature (default: Ed25519 here)."""
    body, signatures = parse_note(text)
    mine = [sig for name, key_id, sig in signatures if name == key.name and key_id == key.key_id]
    if not mine:
        raise ReceiptError(f"the checkpoint has no signature of the key {key.name}+{key.key_id.hex()}")
    if verify is None:
        if key.algorithm != ED25519:
            raise ReceiptError("an SM2 signature is checked by `supex log check-receipt`, not by this file")
        verify = lambda k, s, m: ed25519_verify(k.public_key, s, m)  # noqa: E731
    if not all(verify(key, sig, body.encode()) for sig in mine):
        raise ReceiptError("the checkpoint's signature does not verify: it was altered or signed by another key")
    checkpoint = parse_checkpoint(body)
    if checkpoint.origin != key.name:
        raise ReceiptError(f"the checkpoint is of the log {checkpoint.origin!r}, the key of {key.name!r}")
    return checkpoint


def canonical_entry(entry: dict[str, Any]) -> bytes:
    """An entry's canonical JSON: every field but its two hashes, sorted keys, no spaces, UTF-8."""
    content = {k: v for k, v in entry.items() if k not in ("prev_hash", "hash")}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def check_receipt(receipt: dict[str, Any], key: VerifierKey, h: Hash | None = None,
                  verify: Callable[[VerifierKey, bytes, bytes], bool] | None = None) -> Checkpoint:
    """Check ``receipt`` against ``key``; the checkpoint it is proved in. ``h``: the log's hash
    (SHA-256 unless given)."""
    if not isinstance(receipt, dict):
        raise ReceiptError("a receipt is a JSON object, as GET /v1/records/{id}/receipt answers it")
    algorithm = receipt.get("log_hash")
    if h is None:
        if algorithm not in ("sha256", "sm3"):
            raise ReceiptError(f"the receipt names its log's hash as {str(algorithm)[:40]!r}, not sha256 or sm3")
        if algorithm != "sha256":
            raise ReceiptError(f"the log is hashed with {algorithm!r}: check it with `supex log check-receipt`")
        h = sha256
    try:
        entry, proof = receipt["entry"], receipt["inclusion_proof"]
        checkpoint = open_checkpoint(receipt["checkpoint"], key, verify)
        seq, size, path = int(entry["seq"]), int(proof["tree_size"]), [bytes.fromhex(p) for p in proof["audit_path"]]
        leaf = h(b"\x00" + canonical_entry(entry))
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise ReceiptError(f"the receipt lacks or misstates {exc}") from None
    if size != checkpoint.size:
        raise ReceiptError(f"the proof is for a tree of {size}, the checkpoint signs one of {checkpoint.size}")
    if "origin" in receipt and receipt["origin"] != checkpoint.origin:
        raise ReceiptError(f"the receipt names the log {str(receipt['origin'])[:80]!r}, its checkpoint is signed "
                           f"for {checkpoint.origin!r}")
    if not verify_inclusion(h, seq - 1, size, leaf, path, checkpoint.root):
        raise ReceiptError(f"entry {seq} is not in the signed tree of {size} entries: the entry or its proof "
                           "was altered")
    return checkpoint


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"the field {name!r} appears twice in one object: which one is meant cannot be told")
        found[name] = value
    return found


def read_json(path: Path) -> Any:
    """A receipt or proof file as a department may have saved it (a byte-order mark allowed).
    ``ValueError`` if it is not JSON, names a field twice in one object, or nests too deeply."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_one_each)
    except RecursionError:
        raise ValueError("it nests too deeply to be a receipt or a proof") from None


def read_note(path: Path) -> str:
    """A signed note kept in a file, as an editor may have saved it: a byte-order mark and Windows
    line ends undone (a note holds neither)."""
    return path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")


def consistency_hashes(answer: Any) -> list[bytes]:
    """The hashes of a consistency proof as GET /v1/audit/proof/consistency answers it (none given:
    none, as between a checkpoint and itself)."""
    if answer is None:
        return []
    try:
        return [bytes.fromhex(p) for p in answer["proof"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ReceiptError(f"the consistency proof lacks or misstates {exc}: expected "
                           '{"proof": [hex, …]}') from None


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a supex exchange-log receipt offline (SHA-256 logs, "
                                     "Ed25519 keys).")
    parser.add_argument("receipt", help="the receipt as GET /v1/records/{id}/receipt answered it (JSON)")
    parser.add_argument("--key", required=True, help="the log's verifier key, name+id+key (supex keys show)")
    parser.add_argument("--older", help="a checkpoint you kept earlier (signed note): the receipt's must extend it")
    parser.add_argument("--proof", help="the consistency proof between the two (GET /v1/audit/proof/consistency)")
    args = parser.parse_args(argv)
    try:
        receipt = read_json(Path(args.receipt))
        older = read_note(Path(args.older)) if args.older else None
        proof = read_json(Path(args.proof)) if args.proof else None
    except (OSError, ValueError) as exc:
        print(f"cannot read: {exc}", file=sys.stderr)
        return 2
    try:
        key = VerifierKey(args.key)
        checkpoint = check_receipt(receipt, key)
        if older is not None:
            earlier = open_checkpoint(older, key)
            hashes = consistency_hashes(proof)
            if not verify_consistency(sha256, earlier.size, checkpoint.size, earlier.root, checkpoint.root, hashes):
                raise ReceiptError(f"the log of {checkpoint.size} does not extend the one of {earlier.size} you "
                                   "kept: it was rewritten")
    except ReceiptError as exc:
        print(f"NOT VERIFIED: {exc}")
        return 1
    entry = receipt["entry"]
    print(f"verified: entry {entry['seq']} ({entry.get('event')}, record {entry.get('record_id')}) is in the log "
          f"{checkpoint.origin} of {checkpoint.size} entries, signed by {key.name}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
