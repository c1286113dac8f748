"""The exchange log's entries, their hashes and the one verifier, as pure values and functions.

An entry holds metadata only: who, what type and id, which rule, which field paths, a digest — no
payload values. Its hash is its leaf in the log's Merkle tree (``gateway.merkle``),
``H(0x00 || canonical JSON of the entry)`` with H = SM3 or SHA-256, and ``prev_hash`` links it to
the entry before; entries written before the log became a tree keep their chain hash,
``H(prev_hash || canonical JSON)``, and verify as they always did. ``check_stretch`` is the one
verifier: the store runs it over its rows (in worker processes for long logs), and
``verify_chain`` over entries in hand.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from gateway.exceptions import LogIntegrityError
from gateway.merkle import Hash, Levels, border, fold, hash_function, node_hash, node_levels, subtrees

if TYPE_CHECKING:
    from policy import Shared

__all__ = [
    "EVENTS",
    "GENESIS",
    "LOG_COLUMNS",
    "Body",
    "ChainCheck",
    "Link",
    "LogEntry",
    "Stretch",
    "against_checkpoint",
    "audit_query",
    "chain_hash",
    "changed_entry",
    "check_bodies",
    "check_stretch",
    "content_digest",
    "delivery_entry",
    "joined",
    "log_time",
    "moment_text",
    "row_canonical",
    "row_entry",
    "shared_digest",
    "verify_chain",
]

EVENTS = (
    "received", "rejected", "duplicate", "stale", "stored", "routed", "denied", "delivered", "delivery_failed",
    "overdue", "dead_lettered", "replayed", "pulled", "acked", "config_changed", "audit_query",
    # the sharing procedure (the item's id in batch_id, the actor as connector)
    "request_submitted", "request_approved", "request_refused", "request_granted", "request_objected",
    "request_revoked", "request_overdue", "record_objected", "objection_upheld", "objection_corrected",
    "objection_overdue", "objection_unmatched", "duty_opened", "duty_reminded", "duty_met", "duty_overdue", "late",
)
GENESIS = "0" * 64
LOG_COLUMNS = ("seq", "at", "event", "connector", "counterpart", "source", "record_type", "record_id", "version",
               "batch_id", "rule", "purpose", "fields", "masked", "digest", "reason", "prev_hash", "hash")


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
    return hash_function(algorithm)(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hex()


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
    """``H(prev_hash || canonical JSON of the entry)``."""
    return hash_function(algorithm)(prev_hash.encode() + canonical).hex()


@dataclasses.dataclass(frozen=True)
class ChainCheck:
    """The outcome of verifying the log: ``entries`` verified after the ``archived`` ones (pruned
    from the store, whose archive verifies them); ``first_bad_seq`` names the first entry that
    fails; ``root`` is the root hash of the tree recomputed from the entries (when all of them hold)."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head: str = GENESIS
    root: bytes | None = None
    archived: int = 0

    @property
    def size(self) -> int:
        """The seq of the last entry verified: the size of the tree they make."""
        return self.archived + self.entries


def against_checkpoint(outcome: ChainCheck, checkpoint: tuple[int, str], hash_at: str | None) -> ChainCheck:
    """Hold a verified log to a head recorded outside the system: a removed tail shows here.

    ``hash_at`` is the hash the log now holds at the checkpoint's seq (``None`` if it ends before)."""
    seq, expected = checkpoint
    if not outcome.ok:
        return outcome
    if hash_at is None:
        reason = f"the log ends at seq {outcome.size}, before the checkpoint at seq {seq} (entries removed)"
        return dataclasses.replace(outcome, ok=False, first_bad_seq=outcome.size + 1, reason=reason, root=None)
    if hash_at != expected:
        return dataclasses.replace(outcome, ok=False, first_bad_seq=seq, root=None,
                                   reason=f"the hash at seq {seq} differs from the checkpoint")
    return outcome


Border = tuple[tuple[int, int, bytes], ...]  # complete subtrees as (level, index, hash), left to right


class Stretch(NamedTuple):
    """What verifying entries ``first`` … ``last`` found: how many hold before the first bad one (if
    any), the first entry's ``prev_hash`` (its link is checked when stretches are joined), the last
    good hash, and the subtrees of the tree their leaves make."""

    first: int
    verified: int
    first_prev: str | None
    last_hash: str | None
    bad_seq: int | None = None
    bad_reason: str | None = None
    border: Border = ()


# (seq, prev_hash, hash, canonical JSON of the entry): what verifying one entry reads of it; the
# canonical JSON ``None`` where its row holds what no entry can (a value of another type)
Link = tuple[int, str, str, bytes | None]
# (seq, prev_hash, hash, 0x00 || canonical JSON): an entry of the tree as its leaf hash reads it
Body = tuple[int, str, str, bytes]


# where the tree as stored differs from the levels of nodes a stretch's leaves make: the first
# entry below that and why (``None``: it holds)
TreeCheck = Callable[[Levels], tuple[int, str] | None]


def _held_to(tree: TreeCheck | None, h: Hash, leaves: list[bytes], stretch: Stretch) -> Stretch:
    """``stretch``, all of whose entries hold, with the subtrees its leaves make; or, where ``tree``
    finds the stored tree differs from them, the stretch bad from the first entry below that."""
    levels = node_levels(h, leaves, stretch.first - 1)
    problem = tree(levels) if tree is not None else None
    if problem is not None:
        bad, reason = problem
        return stretch._replace(verified=bad - stretch.first, bad_seq=bad, bad_reason=reason)
    return stretch._replace(border=tuple(border(levels)))


def check_stretch(links: Iterable[Link], algorithm: str, first: int, last: int | None = None, *,
                  chained: int = 0, recheck: Callable[[int], bytes | None] | None = None,
                  tree: TreeCheck | None = None) -> Stretch:
    """The one verifier of the log: entries ``first`` … ``last`` (to the end when ``None``), each
    where it should be, linked to the one before by ``prev_hash`` and matching its hash — its leaf
    in the tree, ``H(0x00 || canonical JSON)``, or for the entries up to ``chained``, written before
    the tree, ``H(prev_hash || canonical JSON)``. ``recheck(seq)`` gives an entry's canonical JSON
    by its definition (``LogEntry.canonical``) before the entry is called changed, where the bytes
    were built by other means (a database's own JSON) and may differ without a change.

    Each stretch returns the subtrees its leaves make, which ``joined`` joins into the tree's;
    with ``tree``, the stored tree is held to the nodes they make."""
    count, expected, prev, first_prev = 0, first, None, None
    h = hash_function(algorithm)  # bound once: this loop is the whole cost
    leaves: list[bytes] = []

    def outcome(bad_seq: int | None = None, reason: str | None = None) -> Stretch:
        return Stretch(first, count, first_prev, prev, bad_seq, reason, tuple(subtrees(h, leaves, first - 1)))

    for seq, prev_hash, stored, canonical in links:
        if seq != expected:
            return outcome(expected, f"seq {seq} where {expected} was expected (an entry removed or reordered)")
        if prev is None:
            first_prev = prev_hash
        elif prev_hash != prev:
            return outcome(seq, "prev_hash does not match the previous entry's hash")
        if seq > chained and canonical is not None:  # the common case, inline: this loop is the whole cost
            hashed = h(b"\x00" + canonical)
            leaf = hashed if hashed.hex() == stored else None
        else:
            leaf = _leaf_if_holds(h, seq, prev_hash, stored, canonical, chained=chained)
        if leaf is None and recheck is not None:
            leaf = _leaf_if_holds(h, seq, prev_hash, stored, recheck(seq), chained=chained)
        if leaf is None:
            return outcome(seq, "hash does not match the entry's content (changed)")
        leaves.append(leaf)
        count, expected, prev = count + 1, expected + 1, stored
    if last is not None and expected <= last:
        return outcome(expected, f"seq {expected} is missing (an entry removed)")
    return _held_to(tree, h, leaves, Stretch(first, count, first_prev, prev))


def check_bodies(rows: Sequence[Body], algorithm: str, first: int, last: int,
                 tree: TreeCheck | None = None) -> Stretch | None:
    """``check_stretch`` for the common case at a fraction of its cost, a column at a time: ``rows``
    of ``(seq, prev_hash, hash, 0x00 || canonical JSON)`` for entries ``first`` … ``last`` of the
    tree (none hash-chained), in seq order. It gives the stretch when every entry holds, and
    ``None`` when anything does not: ``check_stretch`` then says where and why."""
    if len(rows) != last - first + 1 or not rows or rows[0][0] != first or rows[-1][0] != last:
        return None  # seqs are unique and ordered: first … last, that many, is every one of them
    _, prevs, stored, bodies = zip(*rows, strict=True)
    if prevs[1:] != stored[:-1]:
        return None
    h = hash_function(algorithm)
    leaves = list(map(h, bodies))
    if b"".join(leaves).hex() != "".join(stored):
        return None
    return _held_to(tree, h, leaves, Stretch(first, len(rows), prevs[0], stored[-1]))


def _leaf_if_holds(h: Hash, seq: int, prev_hash: str, stored: str, canonical: bytes | None, *,
                   chained: int) -> bytes | None:
    """The entry's leaf hash if its stored hash is what its content gives (``None`` otherwise)."""
    if canonical is None:
        return None
    leaf = h(b"\x00" + canonical)
    if seq > chained:
        return leaf if leaf.hex() == stored else None
    return leaf if h(prev_hash.encode() + canonical).hex() == stored else None


def joined(stretches: Iterable[Stretch], prev_hash: str = GENESIS, algorithm: str = "sm3",
           before: Border = ()) -> Iterator[ChainCheck]:
    """The outcome of consecutive stretches, after each and last: each must start from the hash the
    one before ended on (the first from ``prev_hash``); the last carries the tree's root, made with
    the subtrees ``before`` the first stretch (entries archived and pruned from the store)."""
    verified, head, archived = 0, prev_hash, sum(1 << level for level, _, _ in before)
    h = hash_function(algorithm)
    stack: list[tuple[int, int, bytes]] = list(before)
    for stretch in stretches:
        if stretch.first_prev is not None and stretch.first_prev != head:
            yield ChainCheck(False, verified, stretch.first, "prev_hash does not match the previous entry's hash",
                             head, archived=archived)
            return
        if stretch.bad_seq is not None:
            yield ChainCheck(False, verified + stretch.verified, stretch.bad_seq, stretch.bad_reason,
                             stretch.last_hash or head, archived=archived)
            return
        for node in stretch.border:
            stack.append(node)
            while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
                level, index, right = stack.pop()
                stack[-1] = (level + 1, index >> 1, node_hash(h, stack[-1][2], right))
        verified, head = verified + stretch.verified, stretch.last_hash or head
        yield ChainCheck(True, verified, None, None, head, archived=archived)
    yield ChainCheck(True, verified, None, None, head, fold(h, [n[2] for n in stack]) if stack else None, archived)


def verify_chain(algorithm: str, entries: Iterable[LogEntry], *, after: int = 0, prev_hash: str = GENESIS,
                 chained: int = 0) -> Iterator[ChainCheck]:
    """Check entries in order (those after seq ``after``, linked from ``prev_hash``; those up to
    ``chained`` hash-chained) with the one verifier; the outcome last."""
    links = ((e.seq, e.prev_hash, e.hash, e.canonical(e.seq)) for e in entries)
    return joined([check_stretch(links, algorithm, after + 1, chained=chained)], prev_hash, algorithm)


def row_canonical(row: Sequence[Any]) -> bytes | None:
    """The canonical JSON of the entry a row of ``LOG_COLUMNS`` holds, by its definition; ``None``
    where the row holds what no entry can (bytes, or a number where text belongs): it was changed."""
    try:
        return row_entry(row).canonical(row[0])
    except (LogIntegrityError, TypeError, ValueError, AttributeError):
        return None


def row_entry(row: Sequence[Any]) -> LogEntry:
    """An entry as a row of ``LOG_COLUMNS`` holds it (field lists comma-joined);
    ``LogIntegrityError`` naming it where the row holds what the gateway never writes (bytes, a
    number for a field list): it was changed in the store."""
    if bytes in map(type, row):
        raise changed_entry(row[0])
    values = dict(zip(LOG_COLUMNS, row, strict=True))
    try:
        values["fields"] = tuple(f for f in (values["fields"] or "").split(",") if f)
        values["masked"] = tuple(f for f in (values["masked"] or "").split(",") if f)
    except AttributeError:
        raise changed_entry(row[0]) from None
    return LogEntry(**values)


def changed_entry(seq: object) -> LogIntegrityError:
    """The error for log entry ``seq`` when its row holds what no entry can."""
    return LogIntegrityError(f"交换日志第 {seq} 条无法读取，存储中的这一行已被改动 / log entry {seq} cannot be "
                             "read: its row in the store was changed; run `supex log verify`")


def delivery_entry(event: str, at: str, consumer: str, record: Mapping[str, Any], **more: Any) -> LogEntry:
    """An entry about ``record`` and one of its consumers: the consumer is the connector, the
    record's producer the counterpart (and source)."""
    producer = (record.get("source") or {}).get("connector")
    return LogEntry(event, at, connector=consumer, counterpart=producer, source=producer,
                    record_type=record.get("record_type"), record_id=record.get("record_id"),
                    version=record.get("version"), **more)


def audit_query(at: str, by: str, what: str) -> LogEntry:
    """The entry a query of the log leaves in it: who (``by``) asked what (at most 500 characters)."""
    return LogEntry("audit_query", at, counterpart=by, reason=what[:500])


# the province's clock: a date or a time without an offset is read in it (UTC+8)
_LOCAL = dt.timezone(dt.timedelta(hours=8))


def log_time(text: str, name: str = "time") -> str:
    """A time as the log writes its entries (UTC, milliseconds), from ISO 8601 with any offset or
    ``Z`` (``2026-12-01T14:55:00+08:00``, ``2026-12-01T06:55:00Z``), without one (read as the
    province's time, UTC+8), or a date (its first moment there). ``ValueError`` naming ``name``
    for anything else: a filter that cannot be read must not quietly match nothing."""
    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{name} 应为 ISO 8601 时间或日期 / {name} must be an ISO 8601 time or date, such as "
                         f"2026-12-01, 2026-12-01T14:55:00+08:00 or 2026-12-01T06:55:00Z, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_LOCAL)
    return moment_text(moment)


def moment_text(moment: dt.datetime) -> str:
    """An aware moment as the log and the store write times: UTC, milliseconds
    (``2026-12-01T06:55:00.000+00:00``), so that times compare as text."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")
