"""Batches stored: each record's version decided (``versions.decide``), the new versions written,
rejected records quarantined, the source's mark and the requests' nonces saved, the log appended,
and — with the policy given — the stored records routed, all in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.exchange_log import LogEntry
from gateway.store.base import Connection, Database, upsert
from gateway.store.model import Incoming, IngestOutcome, Quarantined, SourceMark
from gateway.store.routing import Change, Routing
from gateway.store.sealed import QUARANTINED, Sealed, change_binding, quarantine_binding
from gateway.store.versions import decide

if TYPE_CHECKING:
    from policy import Policy

__all__ = ["Batch", "Nonce", "Records"]

# connector, batch id, to store, to quarantine, and where a fetched batch came from
Batch = tuple[str, str, list[Incoming], list[Quarantined], SourceMark | None]
Nonce = tuple[str, str, float]  # connector, nonce, until when (epoch seconds) a replay of it is possible


@dataclass
class _Writes:
    """What one ingest transaction writes, gathered over its batches so that each table takes one
    statement: few round trips to the database while the writer is held."""

    changes: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[LogEntry] = field(default_factory=list)
    stored: list[Change] = field(default_factory=list)  # what routing reads (payloads unsealed)
    marks: dict[tuple[str, str], tuple[str, str, str, str]] = field(default_factory=dict)
    # the (version, digest, seq) of each record of each connector as stored, or as stored by this
    # transaction so far
    known: dict[str, dict[str, tuple[int, str, int]]] = field(default_factory=dict)

    def write(self, db: Connection) -> None:
        """Write the versions, the current version of each record, the quarantine and the sources' marks."""
        db.executemany("INSERT INTO changes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self.changes)
        latest = {(c[1], c[2]): (c[1], c[2], c[3], c[11], c[0]) for c in self.changes}  # the last one wins
        db.executemany(upsert("current_versions", ("connector", "record_id", "version", "digest", "seq"), 2),
                       latest.values())
        db.executemany("INSERT INTO quarantine (connector, batch_id, idx, record_id, record_type, received_at, "
                       "errors, payload, key_id) VALUES (?,?,?,?,?,?,?,?,?)", self.quarantine)
        db.executemany(upsert("source_marks", ("connector", "name", "value", "at"), 2), self.marks.values())


class Records:
    """Stored versions and quarantined records."""

    def __init__(self, store: Database, sealed: Sealed, routing: Routing) -> None:
        self.store, self.sealed, self.routing = store, sealed, routing

    def ingest(self, connector: str, batch_id: str, incoming: list[Incoming], rejected: list[Quarantined],
               mark: SourceMark | None = None, *, policy: Policy | None = None) -> list[IngestOutcome]:
        """Store a batch in one transaction: versions decided, quarantine filled, log appended, the
        source's ``mark`` (cursor or file) saved with it, and routed with ``policy`` if given."""
        return self.ingest_many([(connector, batch_id, incoming, rejected, mark)], policy=policy)[0]

    def ingest_many(self, batches: list[Batch], *, policy: Policy | None = None) -> list[list[IngestOutcome]]:
        """Store several batches in one transaction (group commit): one fsync for all of them."""
        stored = self.commit_group([(batch, None) for batch in batches], [], policy=policy)[0]
        return [outcomes for outcomes in stored if outcomes is not None]

    def commit_group(self, batches: Sequence[tuple[Batch, Nonce | None]], nonces: Sequence[Nonce], *,
                     policy: Policy | None = None) -> tuple[list[list[IngestOutcome] | None], list[bool]]:
        """In one transaction: record the signed requests' ``nonces`` (whether each is used for the
        first time), and store the ``batches`` — one that came with its request's nonce only if that
        is new (``None`` in its place otherwise: a replay, nothing stored). Nonces alone are
        committed without waiting for the disk: at once visible to every gateway on the store and
        kept across a restart, they could be lost only with the machine (or the database server)
        crashing within the moment after. Without a ``policy`` the records are stored unrouted, for
        ``Routing.catch_up`` to route."""
        with self.store.transaction(serial=bool(batches), durable=bool(batches)) as db:
            fresh = _first_uses(db, [*nonces, *(n for _, n in batches if n is not None)])
            own = iter(fresh[len(nonces):])
            admitted = [nonce is None or next(own) for _, nonce in batches]
            taken = [batch for (batch, _), ok in zip(batches, admitted, strict=True) if ok]
            stored = iter(self._ingest_in(db, taken, policy) if taken else [])
            return [next(stored) if ok else None for ok in admitted], fresh[:len(nonces)]

    def forget_nonces(self, before: float) -> int:
        """Drop the nonces whose window has passed (a replay of them is refused by its timestamp)."""
        with self.store.transaction(serial=False, durable=False) as db:
            return int(db.execute("DELETE FROM nonces WHERE until < ?", (before,)).rowcount or 0)

    def _ingest_in(self, db: Connection, batches: list[Batch], policy: Policy | None) -> list[list[IngestOutcome]]:
        at = self.store.now()
        next_seq = (db.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0) + 1
        writes = _Writes()
        by_connector: dict[str, list[str]] = {}
        for connector, _, incoming, _, _ in batches:
            by_connector.setdefault(connector, []).extend(i.record_id for i in incoming)
        for connector, record_ids in by_connector.items():  # what is stored of them, for every batch at once
            _current(db, connector, record_ids, writes.known.setdefault(connector, {}))
        results = []
        for batch in batches:
            outcomes, next_seq = self._ingest_batch(at, next_seq, batch, writes)
            results.append(outcomes)
        writes.write(db)
        if policy is not None and writes.stored:
            self.routing.route(db, at, writes.stored, writes.entries, policy)
        before = self.store.append(db, writes.entries)  # each outcome's log_seq was its entry's place in them
        return [[o._replace(log_seq=before + (o.log_seq or 0)) for o in outcomes] for outcomes in results]

    def _ingest_batch(self, at: str, next_seq: int, batch: Batch, writes: _Writes) -> tuple[list[IngestOutcome], int]:
        connector, batch_id, incoming, rejected, mark = batch
        known = writes.known[connector]
        sealed = self.sealed
        outcomes: list[IngestOutcome] = []
        changes, entries, quarantine, stored = writes.changes, writes.entries, writes.quarantine, writes.stored
        # one entry for the batch's arrival, then one for what became of each record
        origin = f" from {mark.label}" if mark is not None else ""
        entries.append(LogEntry("received", at, connector=connector, source=connector, batch_id=batch_id,
                                reason=f"{len(incoming) + len(rejected)} records{origin}"))
        if mark is not None:
            writes.marks[(connector, mark.name)] = (connector, mark.name, mark.value, at)
        for item in incoming:
            verdict = decide(known.get(item.record_id), item.version, item.digest)
            if verdict.status == "accepted":
                assert verdict.version is not None
                payload, key = sealed.seal(item.payload, item.grade, change_binding(next_seq))
                changes.append((next_seq, connector, item.record_id, verdict.version, item.record_type, item.op,
                                item.region_code, item.sharing, item.grade, batch_id, at, item.digest, payload, key))
                known[item.record_id] = (verdict.version, item.digest, next_seq)
                stored.append((next_seq, connector, verdict.version, item.record_type, item.payload, item))
                entries.append(LogEntry("stored", at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        version=verdict.version, batch_id=batch_id, digest=item.digest))
                outcomes.append(IngestOutcome(item.position, item.record_id, "accepted", verdict.version, next_seq,
                                              warnings=item.warnings, log_seq=len(entries)))
                next_seq += 1
            elif verdict.status == "rejected":
                errors = [verdict.error] if verdict.error else []
                quarantine.append((connector, batch_id, item.position, item.record_id, item.record_type, at,
                                   *sealed.quarantined(errors, item.payload, batch_id, item.position)))
                entries.append(LogEntry("rejected", at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        batch_id=batch_id, reason="version_conflict"))
                outcomes.append(IngestOutcome(item.position, item.record_id, "rejected", errors=errors,
                                              warnings=item.warnings, log_seq=len(entries)))
            else:
                entries.append(LogEntry(verdict.status, at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        version=item.version, batch_id=batch_id, digest=item.digest))
                outcomes.append(IngestOutcome(item.position, item.record_id, verdict.status, verdict.version,
                                              warnings=item.warnings, log_seq=len(entries)))
        for bad in rejected:
            codes = sorted({e["code"] for e in bad.errors})
            quarantine.append((connector, batch_id, bad.position, bad.record_id, bad.record_type, at,
                               *sealed.quarantined(bad.errors, bad.payload, batch_id, bad.position)))
            entries.append(LogEntry("rejected", at, connector=connector, source=connector,
                                    record_type=bad.record_type, record_id=bad.record_id, batch_id=batch_id,
                                    reason=",".join(codes)))
            outcomes.append(IngestOutcome(bad.position, bad.record_id, "rejected", errors=bad.errors,
                                          log_seq=len(entries)))
        return sorted(outcomes, key=lambda o: o.position), next_seq

    def source_mark(self, connector: str, name: str) -> str | None:
        """The value a source saved under ``name`` with its last batch (``None``: never)."""
        with self.store.query() as db:
            row = db.execute("SELECT value FROM source_marks WHERE connector = ? AND name = ?",
                             (connector, name)).fetchone()
        return None if row is None else str(row[0])

    def rejections(self, connector: str, after: int, limit: int) -> list[dict[str, Any]]:
        """The connector's own quarantined records with their errors, oldest first."""
        with self.store.query() as db:
            rows = db.execute(
                "SELECT id, batch_id, idx, record_id, record_type, received_at, errors, payload FROM quarantine "
                "WHERE connector = ? AND id > ? ORDER BY id LIMIT ?", (connector, after, limit)).fetchall()
        out = []
        for r in rows:
            raw, errors = self.sealed.open(r[7], quarantine_binding(r[1], r[2])), orjson.loads(r[6])
            if raw.startswith(QUARANTINED):  # the errors in full, sealed with the payload
                size = int.from_bytes(raw[len(QUARANTINED):len(QUARANTINED) + 4], "big")
                start = len(QUARANTINED) + 4
                errors, raw = orjson.loads(raw[start:start + size]), raw[start + size:]
            try:
                payload: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = raw.decode("utf-8", errors="replace")
            out.append({"id": r[0], "batch_id": r[1], "index": r[2], "record_id": r[3], "record_type": r[4],
                        "received_at": r[5], "errors": errors, "record": payload})
        return out


def _first_uses(db: Connection, nonces: Sequence[Nonce]) -> list[bool]:
    """Record each ``(connector, nonce, until)``; whether it was not recorded yet."""
    new: set[tuple[str, str]] = set()
    for start in range(0, len(nonces), 300):
        chunk = nonces[start:start + 300]
        values = ", ".join(["(?,?,?)"] * len(chunk))
        rows = db.execute(f"INSERT INTO nonces (connector, nonce, until) VALUES {values} "
                          "ON CONFLICT (connector, nonce) DO NOTHING RETURNING connector, nonce",
                          [v for n in chunk for v in n]).fetchall()
        new.update((r[0], r[1]) for r in rows)
    fresh = []
    for connector, nonce, _ in nonces:  # a nonce twice in one group is new once
        fresh.append((connector, nonce) in new)
        new.discard((connector, nonce))
    return fresh


def _current(db: Connection, connector: str, record_ids: list[str], found: dict[str, tuple[int, str, int]]) -> None:
    """Add to ``found`` the stored ``(version, digest, seq)`` of those of ``record_ids`` that are stored."""
    unique = list(dict.fromkeys(record_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start:start + 500]
        rows = db.execute(
            f"SELECT record_id, version, digest, seq FROM current_versions WHERE connector = ? "
            f"AND record_id IN ({', '.join('?' * len(chunk))})", (connector, *chunk))
        found.update({r[0]: (r[1], r[2], r[3]) for r in rows})
