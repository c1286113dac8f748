"""The store's logic, written once over SQL that SQLite and PostgreSQL both speak.

Every method runs whole in one transaction, so a record and the exchange-log entries about it
are committed together or not at all. A backend (``SQLiteStore``, ``PostgresStore``) supplies the
connections and its migrations:

- ``_transaction()`` for a write. Writes that append to the exchange log or number stored
  versions are serialised, across every gateway on the database (SQLite's write lock, a
  PostgreSQL advisory lock), so that the log is one chain and seqs are in commit order: a
  consumer's cursor never passes a version that is yet to commit.
- ``_transaction(serial=False)`` for a write that touches only its own rows: claiming push
  deliveries, where rows another gateway holds are skipped (``FOR UPDATE SKIP LOCKED``);
  ``durable=False`` for one that need not wait for the disk (the nonces of signed requests).
- ``_query()`` and ``_reading()`` for reads, the latter beside the writer.

Statements use ``?`` placeholders and standard ``ON CONFLICT`` upserts; the methods are plain
blocking functions, called from the gateway's store thread (``gateway.store.runner``).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

import orjson
from cryptography.hazmat.primitives import hashes

from gateway.encryption import SEALED_GRADES, DataCipher, is_sealed
from gateway.exceptions import DataKeyError, ReadLimitError, StoreUnavailableError
from gateway.exchange_log import GENESIS, HASHES, ChainCheck, LogEntry, chain_hash, shared_digest
from gateway.store.model import (
    Due,
    InboxPage,
    Incoming,
    IngestOutcome,
    LogFilter,
    Quarantined,
    SourceMark,
    StoredRecord,
)
from gateway.store.versions import decide
from policy import Decision, Policy, Shared, local_today
from policy.rules import LOCAL

__all__ = ["DEFAULT_LEASE_SECONDS", "LOG_COLUMNS", "Batch", "Clock", "Connection", "Nonce", "SQLStore", "Stretch",
           "WriterTimes", "create_private", "new_backup_file", "utc_now", "verify_stretch"]

Clock = Callable[[], dt.datetime]
# connector, batch id, to store, to quarantine, and where a fetched batch came from
Batch = tuple[str, str, list[Incoming], list[Quarantined], SourceMark | None]
Change = tuple[int, str, int, str, bytes]  # seq, producing connector, version, record type, payload
Nonce = tuple[str, str, float]  # connector, nonce, until when (epoch seconds) a replay of it is possible
LOG_COLUMNS = ("seq", "at", "event", "connector", "counterpart", "source", "record_type", "record_id", "version",
               "batch_id", "rule", "purpose", "fields", "masked", "digest", "reason", "prev_hash", "hash")
VOLUME_EVENTS = frozenset({"stored", "rejected", "delivered", "pulled"})
_QUARANTINED = b"SPXQ"  # a sealed quarantine row: its errors (length, JSON) and then its payload
DEFAULT_LEASE_SECONDS = 60.0  # how long a claimed push delivery is another gateway's to leave alone


@dataclass
class WriterTimes:
    """Seconds spent waiting for the serialised writer and holding it (statements and commit),
    summed over this store's writes: how busy the one writer of a database is, which bounds what
    more gateways on it can add."""

    waited: float = 0.0
    held: float = 0.0

    @contextmanager
    def timing(self) -> Iterator[Callable[[], None]]:
        """Time one write: call the given function once the writer is taken; both sums are added
        when the block ends (after the commit)."""
        started = time.perf_counter()
        taken: list[float] = []
        try:
            yield lambda: taken.append(time.perf_counter())
        finally:
            if taken:
                self.waited += taken[0] - started
                self.held += time.perf_counter() - taken[0]


class Connection(Protocol):
    """What the store's logic needs of a connection: ``sqlite3.Connection`` has it as it is."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


def utc_now() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


def _upsert(table: str, columns: tuple[str, ...], keys: int) -> str:
    """``INSERT`` a row of ``columns`` into ``table``, replacing the row with the same first ``keys`` columns."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[keys:])
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(columns[:keys])}) DO UPDATE SET {updates}")


def _row_entry(row: Sequence[Any]) -> LogEntry:
    values = dict(zip(LOG_COLUMNS, row, strict=True))
    values["fields"] = tuple(f for f in (values["fields"] or "").split(",") if f)
    values["masked"] = tuple(f for f in (values["masked"] or "").split(",") if f)
    return LogEntry(**values)


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

    def store(self, db: Connection) -> None:
        """Write the versions, the current version of each record, the quarantine and the sources' marks."""
        db.executemany("INSERT INTO changes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self.changes)
        latest = {(c[1], c[2]): (c[1], c[2], c[3], c[11], c[0]) for c in self.changes}  # the last one wins
        db.executemany(_upsert("current_versions", ("connector", "record_id", "version", "digest", "seq"), 2),
                       latest.values())
        db.executemany("INSERT INTO quarantine (connector, batch_id, idx, record_id, record_type, received_at, "
                       "errors, payload, key_id) VALUES (?,?,?,?,?,?,?,?,?)", self.quarantine)
        db.executemany(_upsert("source_marks", ("connector", "name", "value", "at"), 2), self.marks.values())


class SQLStore:
    """Records, quarantine, cursors, deliveries and the exchange log, over a backend's connections."""

    MIGRATIONS: ClassVar[tuple[str, ...]]
    # what a claim of push deliveries adds so that rows another gateway is claiming are skipped
    CLAIM_SUFFIX: ClassVar[str] = ""
    # an expression of ``exchange_log``'s columns giving an entry's canonical JSON, if the backend can
    # build it (``None``: built in Python from the row)
    CANONICAL_SQL: ClassVar[str | None] = None

    def __init__(self, location: str, *, log_hash: str = "sm3", clock: Clock = utc_now,
                 cipher: DataCipher | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.location = location  # what the store was opened from: a file or a database URL
        self.log_hash = log_hash
        self.cipher = cipher
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._lock = threading.RLock()
        self.policy: Policy | None = None
        self.writer = WriterTimes()

    # ---- what a backend provides ----------------------------------------------------------------

    def _transaction(self, serial: bool = True, durable: bool = True) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _query(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _reading(self) -> AbstractContextManager[Connection]:
        """A connection for a read that should not wait on the writer (the console, log queries)."""
        return self._query()

    def _verify_worker(self) -> Callable[[str, str, int, int], Stretch] | None:
        """A function that verifies a stretch of the log from ``location`` in a worker process."""
        return None

    def checkpoint(self) -> None:
        """Housekeeping the gateway runs beside the writer from time to time."""

    def backup(self, target: Path) -> None:
        """Write a consistent copy of the whole store to ``target`` while gateways go on writing."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the store's connections."""
        raise NotImplementedError

    # ---- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Apply the migrations not yet applied, in one transaction (one gateway at a time)."""
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for number, script in enumerate(self.MIGRATIONS[current:], current + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        with self._query() as db:
            return int(db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def check_keys(self) -> None:
        """Refuse to serve payloads sealed under keys the ring does not hold (the gateway's start-up)."""
        with self._query() as db:
            sealed = {row[0] for row in db.execute(
                "SELECT DISTINCT key_id FROM changes WHERE grade IN ('important', 'core') AND key_id IS NOT NULL")}
            sealed |= {row[0] for row in db.execute("SELECT DISTINCT key_id FROM quarantine WHERE key_id IS NOT NULL")}
        missing = sorted(sealed - set(self.cipher.key_ids if self.cipher else ()))
        if missing:
            raise DataKeyError(f"存储中有数据由未配置的密钥加密 / the store holds payloads sealed with keys {missing} "
                               "that the configured key ring does not hold (data_key_env / data_key_file)")

    def now(self) -> str:
        """The store's notion of now, as the log writes it."""
        return self._clock().astimezone(dt.UTC).isoformat(timespec="milliseconds")

    def _append(self, db: Connection, entries: list[LogEntry]) -> None:
        # the chain continues from the head as it is now, read inside the serialised write: another
        # gateway or a command may have appended since this one last did
        seq, prev = _log_head(db)
        rows = []
        algorithm = self.log_hash
        for entry in entries:
            seq += 1
            digest = chain_hash(algorithm, prev, entry, seq)
            rows.append((seq, entry.at, entry.event, entry.connector, entry.counterpart, entry.source,
                         entry.record_type, entry.record_id, entry.version, entry.batch_id, entry.rule, entry.purpose,
                         ",".join(entry.fields), ",".join(entry.masked), entry.digest, entry.reason, prev, digest))
            prev = digest
        if rows:
            db.executemany(f"INSERT INTO exchange_log ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * 18)})",
                           rows)
        volume = Counter((_local_day(e.at), e.connector, e.event) for e in entries
                         if e.event in VOLUME_EVENTS and e.connector)
        if volume:
            db.executemany("INSERT INTO volume VALUES (?, ?, ?, ?) ON CONFLICT (day, connector, event) DO UPDATE "
                           "SET count = volume.count + excluded.count", [(*key, n) for key, n in volume.items()])

    def ping(self) -> bool:
        """Whether the store answers."""
        with self._query() as db:
            return bool(db.execute("SELECT 1").fetchone()[0] == 1)

    # ---- sealing ------------------------------------------------------------------------------

    def _sealed(self, payload: bytes, grade: str, bound_to: bytes) -> tuple[bytes, str | None]:
        """The payload as stored: sealed with its key id where it is important or core data (rejected
        records count as such: nobody has checked what they hold) and a key ring is configured."""
        if self.cipher is None or grade not in SEALED_GRADES:
            return payload, None
        return self.cipher.seal(payload, bound_to), self.cipher.current

    def _opened(self, payload: bytes, bound_to: bytes) -> bytes:
        if not is_sealed(payload):
            return bytes(payload)
        if self.cipher is None:
            raise DataKeyError("存储中的数据已加密，但未配置数据密钥 / a payload is sealed but no data key is "
                               "configured")
        return self.cipher.open(payload, bound_to)

    def _record(self, seq: int, version: int, payload: bytes) -> dict[str, Any]:
        """A stored version as the record it is (opened if sealed), with its version and seq."""
        return {**orjson.loads(self._opened(payload, _change_binding(seq))), "version": version, "seq": seq}

    def key_status(self) -> dict[str, dict[str, int]]:
        """How many payloads each key seals (``plaintext``: important or core data not sealed), by table."""
        def count(sql: str) -> dict[str, int]:
            with self._query() as db:
                return {key or "plaintext": n for key, n in db.execute(sql)}
        return {"changes": count("SELECT key_id, count(*) FROM changes WHERE grade IN ('important', 'core') "
                                 "GROUP BY key_id"),
                "quarantine": count("SELECT key_id, count(*) FROM quarantine GROUP BY key_id")}

    def rotate_keys(self, by: str, batch: int = 500) -> Iterator[int]:
        """Seal again under the current key whatever another key (or none) seals, a batch a transaction,
        yielding the running count. The gateway goes on meanwhile; after a crash, running it again
        goes on from where it stopped (what is left is what is not yet under the current key)."""
        cipher = self.cipher
        if cipher is None:
            raise DataKeyError("未配置数据密钥 / no data key is configured: set data_key_env or data_key_file")
        done = 0
        for table, sql in _UNDER_OTHER_KEYS.items():
            after = 0
            while True:
                with self._transaction() as db:
                    rows = db.execute(sql, (after, cipher.current, batch)).fetchall()
                    updates = []
                    for row in rows:
                        bound = _change_binding(row[0]) if table == "changes" else _quarantine_binding(row[2], row[3])
                        updates.append((cipher.seal(self._opened(row[1], bound), bound), cipher.current, row[0]))
                    key = "seq" if table == "changes" else "id"
                    db.executemany(f"UPDATE {table} SET payload = ?, key_id = ? WHERE {key} = ?", updates)
                if not rows:
                    break
                after, done = rows[-1][0], done + len(rows)
                yield done
        self.append_log([LogEntry("config_changed", self.now(), counterpart=by,
                                  reason=f"data keys rotated: {done} payloads sealed again under key "
                                         f"{cipher.current} ({cipher.algorithm})")])

    def _quarantined(self, errors: list[dict[str, Any]], payload: bytes, batch_id: str,
                     position: int) -> tuple[str, bytes, str | None]:
        """A rejected record's errors and payload as stored. Sealed (as core data: nobody has checked
        what it holds), its errors are sealed with it, and only their codes and paths stay readable:
        a message may quote the offending value (a code, a USCC)."""
        if self.cipher is None:
            return orjson.dumps(errors).decode(), payload, None
        readable = [{"path": e.get("path", ""), "code": e.get("code", "")} for e in errors]
        details = orjson.dumps(errors)
        sealed, key = self._sealed(_QUARANTINED + len(details).to_bytes(4, "big") + details + payload, "core",
                                   _quarantine_binding(batch_id, position))
        return orjson.dumps(readable).decode(), sealed, key

    # ---- ingest -------------------------------------------------------------------------------

    def ingest(self, connector: str, batch_id: str, incoming: list[Incoming], rejected: list[Quarantined],
               mark: SourceMark | None = None) -> list[IngestOutcome]:
        """Store a batch in one transaction: versions decided, quarantine filled, log appended, and
        the source's ``mark`` (cursor or file) saved with it."""
        return self.ingest_many([(connector, batch_id, incoming, rejected, mark)])[0]

    def ingest_many(self, batches: list[Batch]) -> list[list[IngestOutcome]]:
        """Store several batches in one transaction (group commit): one fsync for all of them."""
        stored = self.commit_group([(batch, None) for batch in batches], [])[0]
        return [outcomes for outcomes in stored if outcomes is not None]

    def commit_group(self, batches: Sequence[tuple[Batch, Nonce | None]], nonces: Sequence[Nonce]) -> tuple[
        list[list[IngestOutcome] | None], list[bool]
    ]:
        """In one transaction: record the signed requests' ``nonces`` (whether each is used for the
        first time), and store the ``batches`` — one that came with its request's nonce only if that
        is new (``None`` in its place otherwise: a replay, nothing stored). Nonces alone are
        committed without waiting for the disk: at once visible to every gateway on the store and
        kept across a restart, they could be lost only with the machine (or the database server)
        crashing within the moment after."""
        with self._transaction(serial=bool(batches), durable=bool(batches)) as db:
            fresh = self._first_uses(db, [*nonces, *(n for _, n in batches if n is not None)])
            own = iter(fresh[len(nonces):])
            admitted = [nonce is None or next(own) for _, nonce in batches]
            taken = [batch for (batch, _), ok in zip(batches, admitted, strict=True) if ok]
            stored = iter(self._ingest_in(db, taken) if taken else [])
            return [next(stored) if ok else None for ok in admitted], fresh[:len(nonces)]

    @staticmethod
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

    def forget_nonces(self, before: float) -> int:
        """Drop the nonces whose window has passed (a replay of them is refused by its timestamp)."""
        with self._transaction(serial=False, durable=False) as db:
            return int(db.execute("DELETE FROM nonces WHERE until < ?", (before,)).rowcount or 0)

    def _ingest_in(self, db: Connection, batches: list[Batch]) -> list[list[IngestOutcome]]:
        at = self.now()
        next_seq = (db.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0) + 1
        writes = _Writes()
        by_connector: dict[str, list[str]] = {}
        for connector, _, incoming, _, _ in batches:
            by_connector.setdefault(connector, []).extend(i.record_id for i in incoming)
        for connector, record_ids in by_connector.items():  # what is stored of them, for every batch at once
            self._current(db, connector, record_ids, writes.known.setdefault(connector, {}))
        results = []
        for batch in batches:
            outcomes, next_seq = self._ingest_batch(db, at, next_seq, batch, writes)
            results.append(outcomes)
        writes.store(db)
        if self.policy is not None and writes.stored:
            self._route(db, at, writes.stored, writes.entries)
        self._append(db, writes.entries)
        return results

    def _ingest_batch(self, db: Connection, at: str, next_seq: int, batch: Batch,
                      writes: _Writes) -> tuple[list[IngestOutcome], int]:
        connector, batch_id, incoming, rejected, mark = batch
        known = writes.known[connector]
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
                payload, key = self._sealed(item.payload, item.grade, _change_binding(next_seq))
                changes.append((next_seq, connector, item.record_id, verdict.version, item.record_type, item.op,
                                item.region_code, item.sharing, item.grade, batch_id, at, item.digest, payload, key))
                known[item.record_id] = (verdict.version, item.digest, next_seq)
                stored.append((next_seq, connector, verdict.version, item.record_type, item.payload))
                entries.append(LogEntry("stored", at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        version=verdict.version, batch_id=batch_id, digest=item.digest))
                outcomes.append(IngestOutcome(item.position, item.record_id, "accepted", verdict.version, next_seq,
                                              warnings=item.warnings))
                next_seq += 1
            elif verdict.status == "rejected":
                errors = [verdict.error] if verdict.error else []
                quarantine.append((connector, batch_id, item.position, item.record_id, item.record_type, at,
                                   *self._quarantined(errors, item.payload, batch_id, item.position)))
                entries.append(LogEntry("rejected", at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        batch_id=batch_id, reason="version_conflict"))
                outcomes.append(IngestOutcome(item.position, item.record_id, "rejected", errors=errors,
                                              warnings=item.warnings))
            else:
                entries.append(LogEntry(verdict.status, at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        version=item.version, batch_id=batch_id, digest=item.digest))
                outcomes.append(IngestOutcome(item.position, item.record_id, verdict.status, verdict.version,
                                              warnings=item.warnings))
        for bad in rejected:
            codes = sorted({e["code"] for e in bad.errors})
            quarantine.append((connector, batch_id, bad.position, bad.record_id, bad.record_type, at,
                               *self._quarantined(bad.errors, bad.payload, batch_id, bad.position)))
            entries.append(LogEntry("rejected", at, connector=connector, source=connector,
                                    record_type=bad.record_type, record_id=bad.record_id, batch_id=batch_id,
                                    reason=",".join(codes)))
            outcomes.append(IngestOutcome(bad.position, bad.record_id, "rejected", errors=bad.errors))
        return sorted(outcomes, key=lambda o: o.position), next_seq

    @staticmethod
    def _current(db: Connection, connector: str, record_ids: list[str],
                 found: dict[str, tuple[int, str, int]]) -> None:
        """Add to ``found`` the stored ``(version, digest, seq)`` of those of ``record_ids`` that are stored."""
        unique = list(dict.fromkeys(record_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            rows = db.execute(
                f"SELECT record_id, version, digest, seq FROM current_versions WHERE connector = ? "
                f"AND record_id IN ({', '.join('?' * len(chunk))})", (connector, *chunk))
            found.update({r[0]: (r[1], r[2], r[3]) for r in rows})

    # ---- routing ------------------------------------------------------------------------------

    def source_mark(self, connector: str, name: str) -> str | None:
        """The value a source saved under ``name`` with its last batch (``None``: never)."""
        with self._query() as db:
            row = db.execute("SELECT value FROM source_marks WHERE connector = ? AND name = ?",
                             (connector, name)).fetchone()
        return None if row is None else str(row[0])

    def set_policy(self, policy: Policy) -> int:
        """Route with ``policy`` from now on; first route whatever was stored without one. Returns how
        many stored records that routed."""
        with self._lock:
            self.policy = policy
            routed = 0
            while True:
                with self._transaction() as db:
                    done = db.execute("SELECT seq FROM progress WHERE name = 'routed'").fetchone()
                    rows = db.execute("SELECT seq, connector, version, record_type, payload FROM changes "
                                      "WHERE seq > ? ORDER BY seq LIMIT 2000", (done[0] if done else 0,)).fetchall()
                    if rows:
                        entries: list[LogEntry] = []
                        self._route(db, self.now(), [(seq, source, version, record_type,
                                                      self._opened(payload, _change_binding(seq)))
                                                     for seq, source, version, record_type, payload in rows], entries)
                        self._append(db, entries)
                if not rows:
                    return routed
                routed += len(rows)

    def _route(self, db: Connection, at: str, changes: Sequence[Change], entries: list[LogEntry]) -> None:
        """Route stored changes in order: delivery rows for the consumers allowed them, and to
        ``entries`` a log entry for every consumer routed or denied. Runs inside the transaction
        that stored them."""
        policy = self._policy()
        today = local_today(self._clock())
        deliveries: list[tuple[Any, ...]] = []

        catalogue, producer = partial(_matter_departments, db), partial(_producer, db)
        for seq, source, version, record_type, payload in changes:
            if record_type != "matter" and not policy.may_route(source):
                continue  # nobody else could receive it: no need to read it
            record = {**orjson.loads(payload), "version": version, "seq": seq}  # plaintext: as just stored
            if record["record_type"] == "matter":
                self._catalogue(db, record)
            for route in policy.routes(record, source, catalogue=catalogue, producer=producer):
                decision = policy.decide(record, route.consumer, today)
                if not decision.allowed:
                    entries.append(_delivery_entry("denied", at, route.consumer, record,
                                                   reason=f"{route.reason}: {decision.reason}"))
                    continue
                due_by = None
                if decision.deliver_within:
                    due_by = (dt.datetime.fromisoformat(record["received_at"])
                              + dt.timedelta(seconds=decision.deliver_within)).isoformat(timespec="milliseconds")
                deliveries.append((route.consumer, seq, route.reason, decision.rule, due_by))
                entries.append(_delivery_entry("routed", at, route.consumer, record, rule=decision.rule,
                                               purpose=decision.purpose, reason=route.reason))
        db.executemany("INSERT INTO deliveries (consumer, seq, route, rule, status, due_by) "
                       "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING", deliveries)
        db.execute(_upsert("progress", ("name", "seq"), 1), ("routed", changes[-1][0]))

    @staticmethod
    def _catalogue(db: Connection, matter: Mapping[str, Any]) -> None:
        data = matter.get("data") or {}
        code = data.get("matter_code")
        if matter.get("op") == "delete":
            db.execute("DELETE FROM matters WHERE matter_code = ?", (code,))
            return
        departments = [data.get("lead_department_code"), *(data.get("co_department_codes") or ())]
        db.execute(_upsert("matters", ("matter_code", "departments"), 1),
                   (code, ",".join(d for d in departments if d)))

    def matter_departments(self, matter_code: str) -> list[str]:
        """The departments (lead first) of a matter in the catalogue routing reads."""
        with self._query() as db:
            return _matter_departments(db, matter_code)

    def producer(self, refers_to: Mapping[str, Any]) -> str | None:
        """The connector that produced the record a feedback refers to, if it is stored."""
        with self._query() as db:
            return _producer(db, refers_to)

    def _policy(self) -> Policy:
        if self.policy is None:
            raise StoreUnavailableError("路由策略未加载 / no routing policy is set on the store")
        return self.policy

    # ---- push delivery ---------------------------------------------------------------------------

    def due(self, consumer: str, now: float, limit: int, claimant: str = "") -> list[Due]:
        """Claim for ``claimant`` the deliveries to ``consumer`` waiting and due by ``now`` (epoch
        seconds), oldest first.

        A claim is a lease of ``lease_seconds``: no other gateway on the database takes these rows
        until it expires, and if this one dies before it has delivered them, another takes them
        over once it has (or the same gateway at once when it starts again: ``release_claims``)."""
        with self._transaction(serial=False) as db:
            rows = db.execute(
                "SELECT d.seq, c.version, c.payload, d.attempts, d.due_by FROM deliveries d JOIN changes c "
                "ON c.seq = d.seq WHERE d.status = 'pending' AND d.consumer = ? AND d.next_at <= ? "
                f"AND d.lease_until <= ? ORDER BY d.seq LIMIT ?{self.CLAIM_SUFFIX}",
                (consumer, now, now, limit)).fetchall()
            db.executemany("UPDATE deliveries SET lease_until = ?, claimed_by = ? WHERE consumer = ? AND seq = ?",
                           [(now + self.lease_seconds, claimant, consumer, row[0]) for row in rows])
        return [Due(seq, self._record(seq, version, payload), attempts, due_by)
                for seq, version, payload, attempts, due_by in rows]

    def release(self, consumer: str, items: Sequence[Due]) -> None:
        """Give claimed deliveries back untried, for the next round here or elsewhere."""
        with self._transaction(serial=False) as db:
            db.executemany("UPDATE deliveries SET lease_until = 0 WHERE consumer = ? AND seq = ?",
                           [(consumer, item.seq) for item in items])

    def release_claims(self, claimant: str) -> int:
        """Give back every claim ``claimant`` holds: it is starting, so whatever it claimed before
        died with its previous process. Returns how many."""
        with self._transaction(serial=False) as db:
            return int(db.execute("UPDATE deliveries SET lease_until = 0 WHERE claimed_by = ? AND lease_until > 0",
                                  (claimant,)).rowcount)

    def next_due(self, consumer: str) -> float | None:
        """When the next waiting delivery to ``consumer`` falls due (epoch seconds), if any waits: its
        next attempt, or when another gateway's claim on it runs out."""
        with self._query() as db:
            row = db.execute("SELECT min(CASE WHEN next_at > lease_until THEN next_at ELSE lease_until END) "
                             "FROM deliveries WHERE status = 'pending' AND consumer = ?", (consumer,)).fetchone()
        return None if row[0] is None else float(row[0])

    def delivered(self, consumer: str, sent: Sequence[tuple[Due, Decision, Shared, str]]) -> int:
        """Pushed and acknowledged by the consumer (each with the digest of what it received): logged
        with what was shared, overdue ones flagged (their number is returned); the rows are done with."""
        now = self._clock()
        at = self.now()
        with self._transaction() as db:
            entries: list[LogEntry] = []
            for item, decision, shared, digest in sent:
                entries.extend(self._delivered(at, consumer, item.record, decision, shared, digest=digest,
                                               due_by=item.due_by, now=now))
            db.executemany("DELETE FROM deliveries WHERE consumer = ? AND seq = ?",
                           [(consumer, item.seq) for item, _, _, _ in sent])
            self._append(db, entries)
            return sum(1 for e in entries if e.event == "overdue")

    def withheld(self, consumer: str, items: Sequence[tuple[Due, str]]) -> None:
        """No longer allowed when their turn came (a rule withdrawn or expired): denied, not sent."""
        at = self.now()
        with self._transaction() as db:
            db.executemany("UPDATE deliveries SET status = 'denied' WHERE consumer = ? AND seq = ?",
                           [(consumer, item.seq) for item, _ in items])
            self._append(db, [_delivery_entry("denied", at, consumer, item.record, reason=why) for item, why in items])

    def failed(self, consumer: str, items: Sequence[Due], error: str, retry_at: float, dead: bool) -> None:
        """A push attempt failed: retried at ``retry_at``, or moved to the dead letters."""
        at = self.now()
        with self._transaction() as db:
            db.executemany("UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ?, status = ?, "
                           "lease_until = 0 WHERE consumer = ? AND seq = ?",
                           [(retry_at, error[:500], "dead" if dead else "pending", consumer, i.seq) for i in items])
            entries = [_delivery_entry("delivery_failed", at, consumer, i.record, reason=error[:500]) for i in items]
            if dead:
                entries += [_delivery_entry("dead_lettered", at, consumer, i.record,
                                            reason=f"after {i.attempts + 1} attempts") for i in items]
            self._append(db, entries)

    def dead_letters(self, consumer: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Deliveries given up on, oldest first."""
        with self._query() as db:
            rows = db.execute(
                "SELECT d.consumer, d.seq, c.connector, c.record_id, c.record_type, c.version, d.attempts, "
                "d.last_error FROM deliveries d JOIN changes c ON c.seq = d.seq WHERE d.status = 'dead' "
                f"{'' if consumer is None else 'AND d.consumer = ? '}ORDER BY d.consumer, d.seq LIMIT ?",
                (limit,) if consumer is None else (consumer, limit)).fetchall()
        keys = ("consumer", "seq", "source", "record_id", "record_type", "version", "attempts", "last_error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def replay(self, consumer: str | None = None, seqs: Sequence[int] | None = None, by: str = "admin") -> int:
        """Send dead letters again (all, one consumer's, or the given seqs); returns how many."""
        at = self.now()
        with self._transaction() as db:
            rows = db.execute(
                "SELECT d.consumer, d.seq, c.connector, c.record_type, c.record_id, c.version FROM deliveries d "
                "JOIN changes c ON c.seq = d.seq WHERE d.status = 'dead' "
                f"{'' if consumer is None else 'AND d.consumer = ? '}ORDER BY d.seq",
                () if consumer is None else (consumer,)).fetchall()
            if seqs is not None:
                wanted = set(seqs)
                rows = [r for r in rows if r[1] in wanted]
            db.executemany("UPDATE deliveries SET status = 'pending', attempts = 0, next_at = 0, lease_until = 0 "
                           "WHERE consumer = ? AND seq = ?", [(r[0], r[1]) for r in rows])
            self._append(db, [LogEntry("replayed", at, connector=r[0], counterpart=r[2], source=r[2],
                                       record_type=r[3], record_id=r[4], version=r[5], reason=f"by {by}")
                              for r in rows])
        return len(rows)

    # ---- one gateway at a time ------------------------------------------------------------------

    def take_turn(self, name: str, holder: str, now: float, hold: float) -> bool:
        """Whether ``holder`` may do ``name`` now (until ``now + hold``): it is nobody's, already
        ``holder``'s, or its holder has not renewed it in time (a gateway that died)."""
        with self._transaction(serial=False) as db:
            db.execute("INSERT INTO turns (name, holder, until) VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                       (name, holder))
            taken = db.execute("UPDATE turns SET holder = ?, until = ? WHERE name = ? AND (holder = ? OR until <= ?)",
                               (holder, now + hold, name, holder, now)).rowcount
        return bool(taken == 1)

    # ---- sharing rules changed at run time -------------------------------------------------------

    def runtime_rules(self) -> dict[str, dict[str, Any]]:
        """Sharing rules added or changed through the admin API, by id."""
        with self._query() as db:
            rows = db.execute("SELECT id, body FROM runtime_rules ORDER BY id").fetchall()
        return {r[0]: orjson.loads(r[1]) for r in rows}

    def connector_states(self) -> dict[str, bool]:
        """Connectors disabled or enabled again through the admin API: id -> enabled."""
        with self._query() as db:
            return {r[0]: bool(r[1]) for r in db.execute("SELECT id, enabled FROM runtime_connectors")}

    def save_connector_state(self, connector: str, enabled: bool, by: str) -> None:
        """Keep a connector disabled (or enabled again) at run time, with its ``config_changed`` entry."""
        at = self.now()
        with self._transaction() as db:
            db.execute(_upsert("runtime_connectors", ("id", "enabled", "changed_at"), 1),
                       (connector, int(enabled), at))
            self._append(db, [LogEntry("config_changed", at, connector=connector, counterpart=by,
                                       reason="connector enabled" if enabled else "connector disabled")])

    def save_rule(self, rule: Mapping[str, Any], by: str, change: str) -> None:
        """Keep a rule added, updated or disabled at run time, with its ``config_changed`` entry."""
        at = self.now()
        with self._transaction() as db:
            db.execute(_upsert("runtime_rules", ("id", "body", "changed_at"), 1),
                       (rule["id"], orjson.dumps(rule, default=str).decode(), at))
            self._append(db, [LogEntry("config_changed", at, counterpart=by, rule=str(rule["id"]),
                                       reason=change)])

    # ---- pull ---------------------------------------------------------------------------------

    def inbox(self, consumer: str, after: int | None, limit: int) -> InboxPage:
        """The next records shared with ``consumer`` after ``after`` (default: its acknowledged cursor),
        each as the policy lets the consumer see it; the first serving of each is logged as delivered."""
        policy = self._policy()
        now = self._clock()
        at = self.now()
        with self._transaction() as db:
            self._count_read(db, consumer, policy.read_limit(consumer), now)
            if after is None:
                row = db.execute("SELECT acked FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
                after = row[0] if row else 0
            rows = db.execute(
                "SELECT d.seq, c.connector, c.record_id, c.version, c.payload, d.status, d.due_by FROM deliveries d "
                "JOIN changes c ON c.seq = d.seq WHERE d.consumer = ? AND d.seq > ? "
                "AND d.status IN ('pending', 'served') ORDER BY d.seq LIMIT ?", (consumer, after, limit)).fetchall()
            records: list[StoredRecord] = []
            entries: list[LogEntry] = []
            served: list[tuple[str, int, str]] = []
            today = local_today(now)
            for seq, source, record_id, version, payload, status, due_by in rows:
                record = self._record(seq, version, payload)
                decision = policy.decide(record, consumer, today)
                if not decision.allowed:  # the agreement was withdrawn or has expired since routing
                    entries.append(_delivery_entry("denied", at, consumer, record, reason=decision.reason))
                    served.append(("denied", seq, consumer))
                    continue
                shared = policy.share(record, decision)
                records.append(StoredRecord(seq, source, record_id, version, shared.record))
                if status == "pending":
                    digest = shared_digest(self.log_hash, shared)
                    entries.extend(self._delivered(at, consumer, record, decision, shared, digest=digest,
                                                   due_by=due_by, now=now))
                    served.append(("served", seq, consumer))
            db.executemany("UPDATE deliveries SET status = ? WHERE seq = ? AND consumer = ?", served)
            following = rows[-1][0] if rows else after
            if rows:
                entries.append(LogEntry("pulled", at, connector=consumer,
                                        reason=f"{len(records)} records, seq {rows[0][0]}-{following}"))
            self._append(db, entries)
            return InboxPage(records, following, sum(1 for e in entries if e.event == "overdue"))

    def _count_read(self, db: Connection, consumer: str, per_day: int | None, now: dt.datetime) -> None:
        if per_day is None:
            return
        local = now.astimezone(LOCAL)
        day = local.date().isoformat()
        row = db.execute("SELECT count FROM reads WHERE consumer = ? AND day = ?", (consumer, day)).fetchone()
        count = (row[0] if row else 0) + 1
        if count > per_day:
            midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), LOCAL)
            raise ReadLimitError(per_day, max(1, int((midnight - local).total_seconds())))
        db.execute(_upsert("reads", ("consumer", "day", "count"), 2), (consumer, day, count))

    @staticmethod
    def _delivered(at: str, consumer: str, record: dict[str, Any], decision: Decision, shared: Shared, *,
                   digest: str, due_by: str | None, now: dt.datetime) -> list[LogEntry]:
        omitted = f"omitted: {', '.join(shared.omitted)}"[:500] if shared.omitted else None
        entries = [_delivery_entry("delivered", at, consumer, record, rule=decision.rule, purpose=decision.purpose,
                                   fields=shared.fields, masked=shared.masked, digest=digest, reason=omitted)]
        if due_by and now > dt.datetime.fromisoformat(due_by):
            entries.append(_delivery_entry("overdue", at, consumer, record, rule=decision.rule,
                                           reason=f"due by {due_by}"))
        return entries

    def ack(self, consumer: str, cursor: int) -> int:
        """Mark everything up to ``cursor`` consumed; returns the acknowledged cursor."""
        with self._transaction() as db:
            row = db.execute("SELECT acked FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
            acked = max(cursor, row[0] if row else 0)
            db.execute(_upsert("cursors", ("consumer", "acked"), 1), (consumer, acked))
            self._append(db, [LogEntry("acked", self.now(), connector=consumer, reason=f"cursor {acked}")])
            return acked

    # ---- reading back -------------------------------------------------------------------------

    def rejections(self, connector: str, after: int, limit: int) -> list[dict[str, Any]]:
        """The connector's own quarantined records with their errors, oldest first."""
        with self._query() as db:
            rows = db.execute(
                "SELECT id, batch_id, idx, record_id, record_type, received_at, errors, payload FROM quarantine "
                "WHERE connector = ? AND id > ? ORDER BY id LIMIT ?", (connector, after, limit)).fetchall()
        out = []
        for r in rows:
            raw, errors = self._opened(r[7], _quarantine_binding(r[1], r[2])), orjson.loads(r[6])
            if raw.startswith(_QUARANTINED):  # the errors in full, sealed with the payload
                size = int.from_bytes(raw[len(_QUARANTINED):len(_QUARANTINED) + 4], "big")
                start = len(_QUARANTINED) + 4
                errors, raw = orjson.loads(raw[start:start + size]), raw[start + size:]
            try:
                payload: Any = orjson.loads(raw)
            except orjson.JSONDecodeError:
                payload = raw.decode("utf-8", errors="replace")
            out.append({"id": r[0], "batch_id": r[1], "index": r[2], "record_id": r[3], "record_type": r[4],
                        "received_at": r[5], "errors": errors, "record": payload})
        return out

    def log_entries(self, *, after: int = 0, where: LogFilter | None = None, limit: int | None = None) -> Iterator[
        LogEntry
    ]:
        """Exchange-log entries after ``after`` matching ``where``, in order, streamed."""
        clauses: list[str] = ["seq > ?"]
        args: list[Any] = [after]
        if where:
            if where.connector is not None:  # the events a connector took part in, on either side
                clauses.append("(connector = ? OR counterpart = ?)")
                args.extend((where.connector, where.connector))
            for column, value in (("at >= ", where.since), ("at < ", where.until),
                                  ("counterpart = ", where.counterpart), ("record_type = ", where.record_type),
                                  ("record_id = ", where.record_id), ("event = ", where.event),
                                  ("rule = ", where.rule), ("source = ", where.source)):
                if value is not None:
                    clauses.append(column + "?")
                    args.append(value)
        sql = f"SELECT {', '.join(LOG_COLUMNS)} FROM exchange_log WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._reading() as reader:
            cursor = reader.execute(sql, args)
            while rows := cursor.fetchmany(2000):
                yield from (_row_entry(r) for r in rows)

    # ---- the review console: reads beside the writer --------------------------------------------

    def search_log(self, where: LogFilter, *, before: int | None = None, limit: int = 50) -> list[LogEntry]:
        """Entries matching ``where``, newest first, older than ``before``: each filter goes by its
        index, so that a page costs the same in a log of a thousand entries or of millions."""
        with self._reading() as db:
            low, high = _seq_bounds(db, where.since, where.until)
            if before is not None:
                high = min(high, before - 1)
            clauses, args = ["seq BETWEEN ? AND ?"], [low, high]  # type: list[str], list[Any]
            for column, value in (("at >= ", where.since), ("at < ", where.until),
                                  ("record_type = ", where.record_type), ("record_id = ", where.record_id),
                                  ("event = ", where.event), ("rule = ", where.rule), ("source = ", where.source),
                                  ("counterpart = ", where.counterpart)):
                if value is not None:
                    clauses.append(column + "?")
                    args.append(value)
            sides = [""] if where.connector is None else [" AND connector = ?", " AND counterpart = ?"]
            found: dict[int, LogEntry] = {}
            for side in sides:  # a party on either side: two index scans, merged
                sql = (f"SELECT {', '.join(LOG_COLUMNS)} FROM exchange_log WHERE {' AND '.join(clauses)}{side} "
                       "ORDER BY seq DESC LIMIT ?")
                extra = [where.connector] if side else []
                for row in db.execute(sql, [*args, *extra, limit]):
                    found[row[0]] = _row_entry(row)
        return [found[seq] for seq in sorted(found, reverse=True)[:limit]]

    def volume(self, since_day: str) -> list[tuple[str, str, str, int]]:
        """Records stored, rejected, delivered and pulled, by day and connector, from ``since_day``."""
        with self._reading() as db:
            return [tuple(r) for r in db.execute(
                "SELECT day, connector, event, count FROM volume WHERE day >= ? ORDER BY day, connector, event",
                (since_day,))]

    def event_counts(self, events: Sequence[str]) -> dict[str, int]:
        """How many entries of each of ``events`` the log holds."""
        with self._reading() as db:
            return {event: db.execute("SELECT count(*) FROM exchange_log WHERE event = ?", (event,)).fetchone()[0]
                    for event in events}

    def denials_by_rule(self, limit: int = 100) -> list[tuple[str | None, str, int]]:
        """Denied routes grouped by the rule or reason that denied them, most frequent first."""
        with self._reading() as db:
            return [tuple(r) for r in db.execute(
                "SELECT rule, reason, count(*) AS n FROM exchange_log WHERE event = 'denied' GROUP BY rule, reason "
                "ORDER BY n DESC LIMIT ?", (limit,))]

    def trail(self, source: str, record_id: str, limit: int = 10_000) -> list[LogEntry]:
        """Every event of one record of ``source``, with the arrival of the batches it came in."""
        own = list(self.log_entries(where=LogFilter(record_id=record_id, source=source), limit=limit))
        batches = sorted({e.batch_id for e in own if e.batch_id})
        if not batches:
            return own
        with self._query() as db:
            rows = db.execute(
                f"SELECT {', '.join(LOG_COLUMNS)} FROM exchange_log WHERE event = 'received' AND source = ? "
                f"AND batch_id IN ({', '.join('?' * len(batches))})", (source, *batches)).fetchall()
        return sorted(own + [_row_entry(r) for r in rows], key=lambda e: e.seq)

    def last_config_change(self) -> int:
        """The seq of the log's latest ``config_changed`` entry (0: none): when it moves, a rule or a
        connector's state may have been changed, perhaps by another gateway on the database."""
        with self._query() as db:
            row = db.execute("SELECT max(seq) FROM exchange_log WHERE event = 'config_changed'").fetchone()
        return int(row[0] or 0)

    def append_log(self, entries: list[LogEntry]) -> None:
        """Append entries that record no change of data (audit queries, configuration changes)."""
        with self._transaction() as db:
            self._append(db, entries)

    def hash_at(self, seq: int) -> str | None:
        """The hash the log holds at ``seq``, or ``None`` if it has no such entry."""
        with self._query() as db:
            row = db.execute("SELECT hash FROM exchange_log WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def log_head(self) -> tuple[int, str]:
        """The last seq and hash of the exchange log."""
        with self._query() as db:
            return _log_head(db)

    def verify_log(self, processes: int | None = None) -> Iterator[ChainCheck]:
        """Verify the whole chain as it stands now, yielding progress after each stretch of entries and
        the outcome last. Stretches are checked side by side in ``processes`` worker processes (default:
        one a core, for large logs); each entry's hash depends only on its own row, so only the links
        between stretches are left to join here."""
        total = self.log_head()[0]
        ranges = [(first, min(first + _VERIFY_STRETCH - 1, total)) for first in range(1, total + 1, _VERIFY_STRETCH)]
        workers = (os.cpu_count() or 1) if processes is None else processes
        worker = self._verify_worker()
        if worker is None or total < _PARALLEL_FROM or workers < 2:
            with self._reading() as db:
                yield from _joined(verify_stretch(db, self.log_hash, a, b, self.CANONICAL_SQL) for a, b in ranges)
            return
        # forked where this process runs no other thread (the command line): nothing to re-import;
        # spawned otherwise (a serving gateway), since forking beside running threads is unsafe
        method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            yield from _joined(pool.map(worker, repeat(self.location), repeat(self.log_hash),
                                        [a for a, _ in ranges], [b for _, b in ranges]))

    def counts(self) -> dict[str, int]:
        """Row counts for metrics: stored versions, quarantined records, log entries."""
        with self._query() as db:
            return {
                "records": db.execute("SELECT count(*) FROM changes").fetchone()[0],
                "quarantined": db.execute("SELECT count(*) FROM quarantine").fetchone()[0],
                "log_entries": _log_head(db)[0],
            }


# the payloads rotation seals again: those under another key than the current one, or none
_UNDER_OTHER_KEYS = {
    "changes": "SELECT seq, payload FROM changes WHERE grade IN ('important', 'core') AND seq > ? "
               "AND (key_id IS NULL OR key_id != ?) ORDER BY seq LIMIT ?",
    "quarantine": "SELECT id, payload, batch_id, idx FROM quarantine WHERE id > ? "
                  "AND (key_id IS NULL OR key_id != ?) ORDER BY id LIMIT ?",
}


def create_private(path: Path) -> int:
    """Create ``path`` new, for writing, readable by this user alone (a store, a backup, a key);
    its descriptor. ``FileExistsError`` if anything is there already, a link planted there too."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def new_backup_file(target: Path) -> None:
    """Create ``target`` empty for a backup to be written into; ``StoreUnavailableError`` if it exists."""
    try:
        os.close(create_private(target))
    except FileExistsError:
        raise StoreUnavailableError(f"备份文件已存在 / {target} exists: name a new file") from None


@lru_cache(maxsize=64)
def _local_day(at: str) -> str:
    """The day in the province's calendar of a UTC time as the log writes it."""
    return dt.datetime.fromisoformat(at).astimezone(LOCAL).date().isoformat()


def _change_binding(seq: int) -> bytes:
    """What a stored version's sealed payload is bound to: its row."""
    return b"changes:%d" % seq


def _quarantine_binding(batch_id: str, position: int) -> bytes:
    return f"quarantine:{batch_id}:{position}".encode()


def _seq_bounds(db: Connection, since: str | None, until: str | None) -> tuple[int, int]:
    """The seqs between which entries of ``since`` … ``until`` lie, found by bisection (entries are
    appended in time order), so that a time filter narrows the scan instead of reading every time."""
    head = db.execute("SELECT max(seq) FROM exchange_log").fetchone()[0] or 0

    def first_at_or_after(moment: str) -> int:
        low, high = 1, head + 1
        while low < high:
            middle = (low + high) // 2
            row = db.execute("SELECT at FROM exchange_log WHERE seq >= ? ORDER BY seq LIMIT 1", (middle,)).fetchone()
            if row is None or row[0] >= moment:
                high = middle
            else:
                low = middle + 1
        return low

    low = first_at_or_after(since) if since else 1
    high = first_at_or_after(until) - 1 if until else head
    return max(0, low - 1), high


_VERIFY_STRETCH = 50_000  # entries a worker checks at a time
_PARALLEL_FROM = 200_000  # logs from this size are verified in several processes


class Stretch(NamedTuple):
    """What a worker found in entries ``first`` … ``last``: how many hold before the first bad one (if
    any), the first entry's ``prev_hash`` (its link is checked when the stretches are joined) and the
    last good hash."""

    first: int
    verified: int
    first_prev: str | None
    last_hash: str | None
    bad_seq: int | None = None
    bad_reason: str | None = None


def verify_stretch(db: Connection, algorithm: str, first: int, last: int, canonical_sql: str | None) -> Stretch:
    """Check entries ``first`` … ``last``: each where it should be, linked to the one before and
    matching its hash. ``canonical_sql`` builds an entry's canonical JSON in the database, which
    spares making a Python value of every column; without it, each row is read whole."""
    columns = f"seq, prev_hash, hash, {canonical_sql}" if canonical_sql else ", ".join(LOG_COLUMNS)
    cursor = db.execute(f"SELECT {columns} FROM exchange_log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last))
    count, expected, prev, first_prev = 0, first, None, None
    new_hash, algorithm_ = hashes.Hash, HASHES[algorithm]  # bound once: this loop is the whole cost
    while rows := cursor.fetchmany(5000):
        for row in rows:
            if canonical_sql:
                seq, prev_hash, stored, canonical = row
                body = (prev_hash + canonical).encode()
            else:
                seq, prev_hash, stored = row[0], row[-2], row[-1]
                body = prev_hash.encode() + _row_entry(row).canonical(seq)
            if seq != expected:
                return Stretch(first, count, first_prev, prev, expected,
                               f"seq {seq} where {expected} was expected (an entry removed or reordered)")
            if prev is None:
                first_prev = prev_hash
            elif prev_hash != prev:
                return Stretch(first, count, first_prev, prev, seq, "prev_hash does not match the previous entry's "
                               "hash")
            digest = new_hash(algorithm_)
            digest.update(body)
            if digest.finalize().hex() != stored and not (canonical_sql and _holds(db, algorithm, seq)):
                return Stretch(first, count, first_prev, prev, seq, "hash does not match the entry's content "
                               "(changed)")
            count, expected, prev = count + 1, expected + 1, stored
    if expected <= last:
        return Stretch(first, count, first_prev, prev, expected, f"seq {expected} is missing (an entry removed)")
    return Stretch(first, count, first_prev, prev)


def _holds(db: Connection, algorithm: str, seq: int) -> bool:
    """Whether entry ``seq`` matches its hash by the canonical JSON's definition (where the database's
    bytes, built by ``canonical_sql``, did not give it)."""
    entry = _row_entry(db.execute(f"SELECT {', '.join(LOG_COLUMNS)} FROM exchange_log WHERE seq = ?",
                                  (seq,)).fetchone())
    return chain_hash(algorithm, entry.prev_hash, entry) == entry.hash


def _joined(stretches: Iterable[Stretch]) -> Iterator[ChainCheck]:
    """The outcome of consecutive stretches: each must start from the hash the one before ended on."""
    verified, head = 0, GENESIS
    for stretch in stretches:
        if stretch.first_prev is not None and stretch.first_prev != head:
            yield ChainCheck(False, verified, stretch.first, "prev_hash does not match the previous entry's hash",
                             head)
            return
        if stretch.bad_seq is not None:
            yield ChainCheck(False, verified + stretch.verified, stretch.bad_seq, stretch.bad_reason,
                             stretch.last_hash or head)
            return
        verified, head = verified + stretch.verified, stretch.last_hash or head
        yield ChainCheck(True, verified, None, None, head)
    yield ChainCheck(True, verified, None, None, head)


def _log_head(db: Connection) -> tuple[int, str]:
    row = db.execute("SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _matter_departments(db: Connection, matter_code: str) -> list[str]:
    row = db.execute("SELECT departments FROM matters WHERE matter_code = ?", (matter_code,)).fetchone()
    return row[0].split(",") if row else []


def _producer(db: Connection, refers_to: Mapping[str, Any]) -> str | None:
    named, record_id = refers_to.get("connector"), refers_to.get("record_id")
    sql = "SELECT connector FROM current_versions WHERE record_id = ?"
    row = db.execute(sql + " AND connector = ?", (record_id, named)).fetchone() if named else \
        db.execute(sql + " LIMIT 1", (record_id,)).fetchone()
    return str(row[0]) if row else None


def _delivery_entry(event: str, at: str, consumer: str, record: Mapping[str, Any], **more: Any) -> LogEntry:
    """An entry about ``record`` and one of its consumers: the consumer is the connector, the
    record's producer the counterpart (and source)."""
    producer = (record.get("source") or {}).get("connector")
    return LogEntry(event, at, connector=consumer, counterpart=producer, source=producer,
                    record_type=record.get("record_type"), record_id=record.get("record_id"),
                    version=record.get("version"), **more)
