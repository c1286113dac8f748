"""The embedded store: one SQLite file in WAL mode, fsync'd on every commit.

One connection and one writer: every method runs whole in one transaction, so a record and the
exchange-log entries about it are committed together or not at all. The gateway calls these
methods from one worker thread (``gateway.store.runner``); they are plain blocking functions.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from gateway.exceptions import StoreUnavailableError
from gateway.exchange_log import GENESIS, ChainCheck, LogEntry, content_hash, verify_chain
from gateway.store.model import Inbox, InboxPage, Incoming, IngestOutcome, LogFilter, Quarantined, StoredRecord
from gateway.store.versions import decide

__all__ = ["MIGRATIONS", "SQLiteStore", "open_store"]

Clock = Callable[[], dt.datetime]
Batch = tuple[str, str, list[Incoming], list[Quarantined]]  # connector, batch id, to store, to quarantine
_LOG_COLUMNS = ("seq", "at", "event", "connector", "counterpart", "source", "record_type", "record_id", "version",
                "batch_id", "rule", "purpose", "fields", "masked", "digest", "reason", "prev_hash", "hash")

MIGRATIONS: tuple[str, ...] = (
    # 1: records (every stored version, in the gateway's sequence), current state, quarantine,
    #    consumer cursors and the hash-chained exchange log
    """
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY, connector TEXT NOT NULL, record_id TEXT NOT NULL, version INTEGER NOT NULL,
        record_type TEXT NOT NULL, op TEXT NOT NULL, region_code TEXT NOT NULL, sharing TEXT NOT NULL,
        grade TEXT NOT NULL, batch_id TEXT NOT NULL, received_at TEXT NOT NULL, digest TEXT NOT NULL,
        payload BLOB NOT NULL);
    CREATE INDEX changes_by_type ON changes (record_type, seq);
    CREATE TABLE current_versions (
        connector TEXT NOT NULL, record_id TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,
        seq INTEGER NOT NULL, PRIMARY KEY (connector, record_id)) WITHOUT ROWID;
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY, connector TEXT NOT NULL, batch_id TEXT NOT NULL, idx INTEGER NOT NULL,
        record_id TEXT, record_type TEXT, received_at TEXT NOT NULL, errors TEXT NOT NULL, payload BLOB NOT NULL);
    CREATE INDEX quarantine_by_connector ON quarantine (connector, id);
    CREATE TABLE cursors (consumer TEXT PRIMARY KEY, acked INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE exchange_log (
        seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, connector TEXT, counterpart TEXT,
        source TEXT, record_type TEXT, record_id TEXT, version INTEGER, batch_id TEXT, rule TEXT, purpose TEXT,
        fields TEXT NOT NULL, masked TEXT NOT NULL, digest TEXT, reason TEXT,
        prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE INDEX exchange_log_by_record ON exchange_log (record_id, seq);
    CREATE INDEX exchange_log_arrivals ON exchange_log (batch_id) WHERE event = 'received';
    """,
)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _row_entry(row: Sequence[Any]) -> LogEntry:
    values = dict(zip(_LOG_COLUMNS, row, strict=True))
    values["fields"] = tuple(f for f in (values["fields"] or "").split(",") if f)
    values["masked"] = tuple(f for f in (values["masked"] or "").split(",") if f)
    return LogEntry(**values)


class SQLiteStore:
    """Records, quarantine, cursors and the exchange log in one SQLite file."""

    def __init__(self, path: str, *, log_hash: str = "sm3", clock: Clock = _utc_now) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.log_hash = log_hash
        self._clock = clock
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # every commit reaches the disk before we answer
            self._db.execute("PRAGMA busy_timeout=5000")
            # checkpoints run beside the writer (``checkpoint``), not inside whichever commit crosses
            # the threshold: a commit then costs its own fsync and nothing more
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"无法打开存储 / cannot open the store {path}: {exc}") from exc
        head = self._db.execute("SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1").fetchone()
        self._head: tuple[int, str] = (head[0], head[1]) if head else (0, GENESIS)

    # ---- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for number, script in enumerate(MIGRATIONS[current:], current + 1):
            self._db.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, script.split(";")):
                self._db.execute(statement)
            self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
            self._db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        return int(self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            head = self._head
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._head = head
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreUnavailableError(f"存储无法提交 / the store cannot commit: {exc}") from exc
            except BaseException:
                self._head = head
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def now(self) -> str:
        """The store's notion of now, as the log writes it."""
        return self._clock().astimezone(dt.UTC).isoformat(timespec="milliseconds")

    def _append(self, db: sqlite3.Connection, entries: list[LogEntry]) -> None:
        seq, prev = self._head
        rows = []
        algorithm = self.log_hash
        for entry in entries:
            seq += 1
            content = entry.content()
            content["seq"] = seq
            digest = content_hash(algorithm, prev, content)
            rows.append((seq, entry.at, entry.event, entry.connector, entry.counterpart, entry.source,
                         entry.record_type, entry.record_id, entry.version, entry.batch_id, entry.rule, entry.purpose,
                         ",".join(entry.fields), ",".join(entry.masked), entry.digest, entry.reason, prev, digest))
            prev = digest
        db.executemany(f"INSERT INTO exchange_log ({', '.join(_LOG_COLUMNS)}) VALUES ({', '.join('?' * 18)})", rows)
        self._head = (seq, prev)

    def checkpoint(self) -> None:
        """Copy committed WAL frames into the database without blocking writers (PASSIVE)."""
        if self.path == ":memory:":
            return
        with sqlite3.connect(self.path, isolation_level=None) as checkpointer:
            checkpointer.execute("PRAGMA busy_timeout=1000")
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        checkpointer.close()

    def close(self) -> None:
        """Checkpoint what remains and close the database."""
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    def ping(self) -> bool:
        """Whether the store answers."""
        with self._lock:
            return bool(self._db.execute("SELECT 1").fetchone() == (1,))

    # ---- ingest -------------------------------------------------------------------------------

    def ingest(self, connector: str, batch_id: str, incoming: list[Incoming], rejected: list[Quarantined]) -> list[
        IngestOutcome
    ]:
        """Store a batch in one transaction: versions decided, quarantine filled, log appended."""
        return self.ingest_many([(connector, batch_id, incoming, rejected)])[0]

    def ingest_many(self, batches: list[Batch]) -> list[
        list[IngestOutcome]
    ]:
        """Store several batches in one transaction (group commit): one fsync for all of them."""
        with self._transaction() as db:
            at = self.now()
            next_seq = (db.execute("SELECT max(seq) FROM changes").fetchone()[0] or 0) + 1
            results = []
            for batch in batches:
                outcomes, next_seq = self._ingest_batch(db, at, next_seq, batch)
                results.append(outcomes)
        return results

    def _ingest_batch(self, db: sqlite3.Connection, at: str, next_seq: int, batch: Batch) -> tuple[
        list[IngestOutcome], int
    ]:
        connector, batch_id, incoming, rejected = batch
        known = self._current(db, connector, [i.record_id for i in incoming])
        outcomes: list[IngestOutcome] = []
        changes: list[tuple[Any, ...]] = []
        entries: list[LogEntry] = []
        quarantine: list[tuple[Any, ...]] = []
        # one entry for the batch's arrival, then one for what became of each record
        entries.append(LogEntry("received", at, connector=connector, source=connector, batch_id=batch_id,
                                reason=f"{len(incoming) + len(rejected)} records"))
        for item in incoming:
            verdict = decide(known.get(item.record_id), item.version, item.digest)
            if verdict.status == "accepted":
                assert verdict.version is not None
                changes.append((next_seq, connector, item.record_id, verdict.version, item.record_type, item.op,
                                item.region_code, item.sharing, item.grade, batch_id, at, item.digest,
                                item.payload))
                known[item.record_id] = (verdict.version, item.digest, next_seq)
                entries.append(LogEntry("stored", at, connector=connector, source=connector,
                                        record_type=item.record_type, record_id=item.record_id,
                                        version=verdict.version, batch_id=batch_id, digest=item.digest))
                outcomes.append(IngestOutcome(item.position, item.record_id, "accepted", verdict.version, next_seq,
                                              warnings=item.warnings))
                next_seq += 1
            elif verdict.status == "rejected":
                errors = [verdict.error] if verdict.error else []
                quarantine.append((connector, batch_id, item.position, item.record_id, item.record_type, at,
                                   orjson.dumps(errors).decode(), item.payload))
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
                               orjson.dumps(bad.errors).decode(), bad.payload))
            entries.append(LogEntry("rejected", at, connector=connector, source=connector,
                                    record_type=bad.record_type, record_id=bad.record_id, batch_id=batch_id,
                                    reason=",".join(codes)))
            outcomes.append(IngestOutcome(bad.position, bad.record_id, "rejected", errors=bad.errors))
        db.executemany("INSERT INTO changes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", changes)
        db.executemany("INSERT OR REPLACE INTO current_versions VALUES (?,?,?,?,?)",
                       [(connector, c[2], c[3], c[11], c[0]) for c in changes])
        db.executemany("INSERT INTO quarantine (connector, batch_id, idx, record_id, record_type, received_at, "
                       "errors, payload) VALUES (?,?,?,?,?,?,?,?)", quarantine)
        self._append(db, entries)
        return sorted(outcomes, key=lambda o: o.position), next_seq

    @staticmethod
    def _current(db: sqlite3.Connection, connector: str, record_ids: list[str]) -> dict[str, tuple[int, str, int]]:
        found: dict[str, tuple[int, str, int]] = {}
        unique = list(dict.fromkeys(record_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            rows = db.execute(
                f"SELECT record_id, version, digest, seq FROM current_versions WHERE connector = ? "
                f"AND record_id IN ({', '.join('?' * len(chunk))})", (connector, *chunk))
            found.update({r[0]: (r[1], r[2], r[3]) for r in rows})
        return found

    # ---- pull ---------------------------------------------------------------------------------

    def inbox(self, inbox: Inbox, after: int | None, limit: int) -> InboxPage:
        """The next records for a consumer after ``after`` (default: its acknowledged cursor)."""
        with self._transaction() as db:
            if after is None:
                row = db.execute("SELECT acked FROM cursors WHERE consumer = ?", (inbox.consumer,)).fetchone()
                after = row[0] if row else 0
            if not inbox.record_types:
                return InboxPage([], after)
            rows = db.execute(
                f"SELECT seq, connector, record_id, version, payload FROM changes WHERE seq > ? "
                f"AND record_type IN ({', '.join('?' * len(inbox.record_types))}) AND region_code LIKE ? "
                f"AND sharing IN ({', '.join('?' * len(inbox.sharing))}) AND connector != ? ORDER BY seq LIMIT ?",
                (after, *inbox.record_types, inbox.region_prefix + "%", *inbox.sharing, inbox.consumer, limit),
            ).fetchall()
            records = [StoredRecord(r[0], r[1], r[2], r[3], {**orjson.loads(r[4]), "version": r[3], "seq": r[0]})
                       for r in rows]
            following = records[-1].seq if records else after
            if records:
                self._append(db, [LogEntry("pulled", self.now(), connector=inbox.consumer,
                                           reason=f"{len(records)} records, seq {records[0].seq}-{following}")])
            return InboxPage(records, following)

    def ack(self, consumer: str, cursor: int) -> int:
        """Mark everything up to ``cursor`` consumed; returns the acknowledged cursor."""
        with self._transaction() as db:
            row = db.execute("SELECT acked FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
            acked = max(cursor, row[0] if row else 0)
            db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (consumer, acked))
            self._append(db, [LogEntry("acked", self.now(), connector=consumer, reason=f"cursor {acked}")])
            return acked

    # ---- reading back -------------------------------------------------------------------------

    def rejections(self, connector: str, after: int, limit: int) -> list[dict[str, Any]]:
        """The connector's own quarantined records with their errors, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, batch_id, idx, record_id, record_type, received_at, errors, payload FROM quarantine "
                "WHERE connector = ? AND id > ? ORDER BY id LIMIT ?", (connector, after, limit)).fetchall()
        out = []
        for r in rows:
            try:
                payload: Any = orjson.loads(r[7])
            except orjson.JSONDecodeError:
                payload = bytes(r[7]).decode("utf-8", errors="replace")
            out.append({"id": r[0], "batch_id": r[1], "index": r[2], "record_id": r[3], "record_type": r[4],
                        "received_at": r[5], "errors": orjson.loads(r[6]), "record": payload})
        return out

    def log_entries(self, *, after: int = 0, where: LogFilter | None = None, limit: int | None = None) -> Iterator[
        LogEntry
    ]:
        """Exchange-log entries after ``after`` matching ``where``, in order, streamed."""
        clauses: list[str] = ["seq > ?"]
        args: list[Any] = [after]
        if where:
            for column, value in (("at >= ", where.since), ("at < ", where.until), ("connector = ", where.connector),
                                  ("counterpart = ", where.counterpart), ("record_type = ", where.record_type),
                                  ("record_id = ", where.record_id), ("event = ", where.event),
                                  ("rule = ", where.rule), ("source = ", where.source)):
                if value is not None:
                    clauses.append(column + "?")
                    args.append(value)
        sql = f"SELECT {', '.join(_LOG_COLUMNS)} FROM exchange_log WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        reader = sqlite3.connect(self.path, check_same_thread=False) if self.path != ":memory:" else self._db
        try:
            cursor = reader.execute(sql, args)
            while rows := cursor.fetchmany(2000):
                yield from (_row_entry(r) for r in rows)
        finally:
            if reader is not self._db:
                reader.close()

    def trail(self, source: str, record_id: str, limit: int = 10_000) -> list[LogEntry]:
        """Every event of one record of ``source``, with the arrival of the batches it came in."""
        own = list(self.log_entries(where=LogFilter(record_id=record_id, source=source), limit=limit))
        batches = sorted({e.batch_id for e in own if e.batch_id})
        if not batches:
            return own
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_LOG_COLUMNS)} FROM exchange_log WHERE event = 'received' AND source = ? "
                f"AND batch_id IN ({', '.join('?' * len(batches))})", (source, *batches)).fetchall()
        return sorted(own + [_row_entry(r) for r in rows], key=lambda e: e.seq)

    def append_log(self, entries: list[LogEntry]) -> None:
        """Append entries that record no change of data (audit queries, configuration changes)."""
        with self._transaction() as db:
            self._append(db, entries)

    def hash_at(self, seq: int) -> str | None:
        """The hash the log holds at ``seq``, or ``None`` if it has no such entry."""
        with self._lock:
            row = self._db.execute("SELECT hash FROM exchange_log WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def log_head(self) -> tuple[int, str]:
        """The last seq and hash of the exchange log."""
        with self._lock:
            return self._head

    def verify_log(self) -> Iterator[ChainCheck]:
        """Verify the whole chain, streamed; the last item is the outcome."""
        return verify_chain(self.log_hash, self.log_entries())

    def counts(self) -> dict[str, int]:
        """Row counts for metrics: stored versions, quarantined records, log entries."""
        with self._lock:
            return {
                "records": self._db.execute("SELECT count(*) FROM changes").fetchone()[0],
                "quarantined": self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0],
                "log_entries": self._head[0],
            }


def open_store(url_or_path: str, *, log_hash: str, clock: Clock = _utc_now) -> SQLiteStore:
    """Open the store a configuration names (a SQLite path here)."""
    if url_or_path.startswith("postgresql://"):
        raise StoreUnavailableError("PostgreSQL 存储尚未提供 / the PostgreSQL store is not available in this build")
    return SQLiteStore(url_or_path, log_hash=log_hash, clock=clock)
