"""The exchange log's entries and hash chain (SPEC §5), as pure values and functions.

``hash = H(prev_hash || canonical JSON of the entry)`` with H = SM3 or SHA-256. An entry holds
metadata only: who, what type and id, which rule, which field paths, a digest — no payload values.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from cryptography.hazmat.primitives import hashes

if TYPE_CHECKING:
    from policy import Shared

__all__ = [
    "EVENTS",
    "GENESIS",
    "HASHES",
    "ChainCheck",
    "LogEntry",
    "against_checkpoint",
    "chain_hash",
    "content_digest",
    "shared_digest",
    "verify_chain",
]

EVENTS = (
    "received", "rejected", "duplicate", "stale", "stored", "routed", "denied", "delivered", "delivery_failed",
    "overdue", "dead_lettered", "replayed", "pulled", "acked", "config_changed", "audit_query",
)
GENESIS = "0" * 64
HASHES: dict[str, hashes.HashAlgorithm] = {"sm3": hashes.SM3(), "sha256": hashes.SHA256()}  # stateless: shared


class LogEntry(NamedTuple):
    """One exchange-log entry; ``seq``, ``prev_hash`` and ``hash`` are set when it is appended.

    A named tuple rather than a dataclass: entries are made per record on the hot path and cross
    process boundaries, where tuples are several times cheaper to build and to pickle."""

    event: str
    at: str
    connector: str | None = None
    counterpart: str | None = None
    source: str | None = None
    record_type: str | None = None
    record_id: str | None = None
    version: int | None = None
    batch_id: str | None = None
    rule: str | None = None
    purpose: str | None = None
    fields: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()
    digest: str | None = None
    reason: str | None = None
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    def content(self, seq: int | None = None) -> dict[str, Any]:
        """What the hash covers: every field but the two hashes (``seq`` in place of the entry's own,
        when given). The keys are in sorted order, so that ``canonical`` needs no sort."""
        return {
            "at": self.at, "batch_id": self.batch_id, "connector": self.connector, "counterpart": self.counterpart,
            "digest": self.digest, "event": self.event, "fields": list(self.fields), "masked": list(self.masked),
            "purpose": self.purpose, "reason": self.reason, "record_id": self.record_id,
            "record_type": self.record_type, "rule": self.rule, "seq": self.seq if seq is None else seq,
            "source": self.source, "version": self.version,
        }

    def canonical(self, seq: int) -> bytes:
        """The canonical JSON of ``content(seq)``: sorted keys, no spaces, UTF-8."""
        return orjson.dumps(self.content(seq))


def content_digest(algorithm: str, value: Any) -> str:
    """The digest of a JSON value as the log records it: H(canonical JSON), sorted keys, UTF-8."""
    digest = hashes.Hash(HASHES[algorithm])
    digest.update(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    return digest.finalize().hex()


def shared_digest(algorithm: str, shared: Shared) -> str:
    """The digest of a record as a consumer received it: the record's own content digest when it
    was shared whole, else the digest of exactly what was shared (fields left out, masks applied)."""
    whole = not shared.fields and not shared.masked and not shared.omitted
    if whole and isinstance(shared.record.get("digest"), str):
        return str(shared.record["digest"])
    return content_digest(algorithm, shared.record)


def chain_hash(algorithm: str, prev_hash: str, entry: LogEntry, seq: int | None = None) -> str:
    """The hash of ``entry`` (at ``seq``, default its own) chained to ``prev_hash``."""
    return _chained(algorithm, prev_hash, entry.canonical(entry.seq if seq is None else seq))


def _chained(algorithm: str, prev_hash: str, canonical: bytes) -> str:
    """``H(prev_hash || canonical JSON of the entry)`` (SPEC §5)."""
    digest = hashes.Hash(HASHES[algorithm])
    digest.update(prev_hash.encode() + canonical)
    return digest.finalize().hex()


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of verifying a chain: ``first_bad_seq`` names the first entry that fails."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head: str = GENESIS


def against_checkpoint(outcome: ChainCheck, checkpoint: tuple[int, str], hash_at: str | None) -> ChainCheck:
    """Hold a verified chain to a head recorded outside the system: a removed tail shows here.

    ``hash_at`` is the hash the log now holds at the checkpoint's seq (``None`` if it ends before)."""
    seq, expected = checkpoint
    if not outcome.ok:
        return outcome
    if hash_at is None:
        reason = f"the log ends at seq {outcome.entries}, before the checkpoint at seq {seq} (entries removed)"
        return ChainCheck(False, outcome.entries, outcome.entries + 1, reason, outcome.head)
    if hash_at != expected:
        return ChainCheck(False, outcome.entries, seq, f"the hash at seq {seq} differs from the checkpoint",
                          outcome.head)
    return outcome


def verify_chain(algorithm: str, entries: Iterable[LogEntry], *, after: int = 0,
                 prev_hash: str = GENESIS) -> Iterator[ChainCheck]:
    """Check entries in order, yielding progress every 10,000 entries and the outcome last.

    An entry is bad if its seq does not follow the previous one (deleted or reordered), its
    prev_hash is not the previous hash, or its hash does not match its content (changed)."""
    count, expected = 0, after + 1
    for entry in entries:
        problem = None
        if entry.seq != expected:
            problem = f"seq {entry.seq} where {expected} was expected (an entry removed or reordered)"
        elif entry.prev_hash != prev_hash:
            problem = "prev_hash does not match the previous entry's hash"
        elif chain_hash(algorithm, prev_hash, entry) != entry.hash:
            problem = "hash does not match the entry's content (changed)"
        if problem:
            yield ChainCheck(False, count, expected if entry.seq > expected else entry.seq, problem, prev_hash)
            return
        count, expected, prev_hash = count + 1, expected + 1, entry.hash
        if count % 10_000 == 0:
            yield ChainCheck(True, count, None, None, prev_hash)
    yield ChainCheck(True, count, None, None, prev_hash)
