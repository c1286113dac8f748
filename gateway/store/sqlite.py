"""The embedded store: one SQLite file in WAL mode, fsync'd on every commit.

One connection and one writer in the gateway; a command on the same file waits its turn through
SQLite's write lock (``BEGIN IMMEDIATE``), so every write is serialised, as ``SQLStore`` needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.encryption import DataCipher
from gateway.exceptions import StoreInUseError, StoreUnavailableError
from gateway.exchange_log import Body, Stretch
from gateway.store.base import DEFAULT_LEASE_SECONDS, Clock, Connection, create_private, utc_now
from gateway.store.log import verify_stretch
from gateway.store.sql import SQLStore

__all__ = ["MIGRATIONS", "SQLiteStore"]

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
    # 2: routing and delivery: one row per record and consumer it is shared with (the outbox of
    #    push consumers and the inbox of pull consumers), the matter catalogue that routing reads,
    #    how far routing has come, inbox reads per day, and rules and connectors changed at run time
    """
    CREATE TABLE deliveries (
        consumer TEXT NOT NULL, seq INTEGER NOT NULL, route TEXT NOT NULL, rule TEXT, status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL DEFAULT 0, due_by TEXT, last_error TEXT,
        PRIMARY KEY (consumer, seq)) WITHOUT ROWID;
    CREATE INDEX deliveries_dead ON deliveries (consumer, seq) WHERE status = 'dead';
    CREATE TABLE matters (matter_code TEXT PRIMARY KEY, departments TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE progress (name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE reads (consumer TEXT NOT NULL, day TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (consumer, day)) WITHOUT ROWID;
    CREATE TABLE runtime_rules (id TEXT PRIMARY KEY, body TEXT NOT NULL, changed_at TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE runtime_connectors (id TEXT PRIMARY KEY, enabled INTEGER NOT NULL, changed_at TEXT NOT NULL)
        WITHOUT ROWID;
    """,
    # 3: how far each polled system and watched folder has been read: a poll cursor, or a file's
    #    digest with its report; written in the transaction that stores the records
    """
    CREATE TABLE source_marks (connector TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
        at TEXT NOT NULL, PRIMARY KEY (connector, name)) WITHOUT ROWID;
    """,
    # 4: encryption at rest: the key a payload is sealed with (NULL: plaintext); the important and
    #    core versions indexed by it, for the start-up check and for rotation
    """
    ALTER TABLE changes ADD COLUMN key_id TEXT;
    ALTER TABLE quarantine ADD COLUMN key_id TEXT;
    CREATE INDEX changes_sealable ON changes (seq, key_id) WHERE grade IN ('important', 'core');
    """,
    # 5: the review console: the log searched by event, party and rule, newest first, and a daily
    #    count of records stored, rejected, delivered and pulled by connector (in the province's
    #    calendar), kept as entries are appended
    """
    CREATE INDEX exchange_log_by_event ON exchange_log (event, seq);
    CREATE INDEX exchange_log_by_connector ON exchange_log (connector, seq);
    CREATE INDEX exchange_log_by_counterpart ON exchange_log (counterpart, seq);
    CREATE INDEX exchange_log_by_rule ON exchange_log (rule, seq) WHERE rule IS NOT NULL;
    CREATE TABLE volume (day TEXT NOT NULL, connector TEXT NOT NULL, event TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (day, connector, event)) WITHOUT ROWID;
    INSERT INTO volume SELECT date(at, '+8 hours'), connector, event, count(*) FROM exchange_log
        WHERE event IN ('stored', 'rejected', 'delivered', 'pulled') AND connector IS NOT NULL
        GROUP BY date(at, '+8 hours'), connector, event;
    """,
    # 6: several gateways on one database: a push delivery claimed by one of them is leased to it
    #    until this time (epoch seconds), and taken over by another once the lease runs out; the
    #    claimant is named, so that a gateway started again takes its own claims back at once
    """
    ALTER TABLE deliveries ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    """,
    # 7: whose turn it is to do what one gateway at a time should do (read a polled system or a
    #    watched folder), until when (epoch seconds): the turn is renewed while its holder lives
    """
    CREATE TABLE turns (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL) WITHOUT ROWID;
    """,
    # 8: the nonces of signed requests seen within the timestamp window (until when, epoch seconds),
    #    so that a replay is refused after a restart and at every gateway on the database
    """
    CREATE TABLE nonces (connector TEXT NOT NULL, nonce TEXT NOT NULL, until REAL NOT NULL,
        PRIMARY KEY (connector, nonce)) WITHOUT ROWID;
    CREATE INDEX nonces_by_time ON nonces (until);
    """,
    # 9: the sharing procedure: requests, objections to records and feedback duties with their
    #    deadlines and histories, the notices given to connectors about them, and the records
    #    received later than their type allows
    """
    CREATE TABLE procedure_items (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, party TEXT NOT NULL,
        counterpart TEXT NOT NULL, record_type TEXT, record_id TEXT, source TEXT, seq BIGINT, opened_at TEXT NOT NULL,
        due_at TEXT, remind_at TEXT, escalated_at TEXT, closed_at TEXT, rule TEXT, body TEXT NOT NULL,
        history TEXT NOT NULL);
    CREATE INDEX procedure_by_status ON procedure_items (status, due_at);
    CREATE INDEX procedure_by_kind ON procedure_items (kind, opened_at);
    CREATE INDEX procedure_by_record ON procedure_items (kind, record_id);
    CREATE TABLE late_records (
        seq BIGINT PRIMARY KEY, connector TEXT NOT NULL, record_type TEXT NOT NULL, record_id TEXT NOT NULL,
        received_at TEXT NOT NULL, occurred_at TEXT, due_at TEXT NOT NULL);
    CREATE INDEX late_by_connector ON late_records (connector, received_at);
    CREATE TABLE notices (id INTEGER PRIMARY KEY, connector TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
        item TEXT NOT NULL, body TEXT NOT NULL, sent_at TEXT);
    CREATE INDEX notices_by_connector ON notices (connector, id);
    """,
    # 10: the verifiable log: the hash of every complete subtree of the exchange log's Merkle tree
    #     but the leaves of entries that hold them, keyed by level and index, and every complete
    #     tile of 256 leaves with all its nodes in one row (an inclusion proof reads one); the
    #     checkpoints signed over it and the witnesses' cosignatures; the seq up to which entries
    #     were hash-chained (those before the tree), and the tree's size, kept with every append
    """
    CREATE TABLE log_tree (node INTEGER PRIMARY KEY, hash BLOB NOT NULL);
    CREATE TABLE log_tiles (tile INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
    CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, at TEXT NOT NULL, signer TEXT NOT NULL,
        note TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE cosignatures (size INTEGER NOT NULL, witness TEXT NOT NULL, at TEXT NOT NULL, line TEXT NOT NULL,
        PRIMARY KEY (size, witness)) WITHOUT ROWID;
    INSERT INTO progress (name, seq) SELECT 'chained', coalesce(max(seq), 0) FROM exchange_log;
    INSERT INTO progress (name, seq) VALUES ('tree', 0)
    """,
    # 11: entries pruned from the live store once archived: up to which seq, that entry's hash (the
    #     link of the first entry kept), when, and the bundle of the archive that holds the last of them;
    #     the entries by counterpart indexed only where they have one (what a producer's own events
    #     lack: the index costs nothing to write for them, and `counterpart = ?` still finds it)
    """
    DROP INDEX exchange_log_by_counterpart;
    CREATE INDEX exchange_log_by_counterpart ON exchange_log (counterpart, seq) WHERE counterpart IS NOT NULL;
    CREATE TABLE log_pruned (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, at TEXT NOT NULL, archive TEXT NOT NULL)
    """,
)


# a quote, a backslash or a control character: text that JSON writes otherwise than as it is
_ESCAPED = "'*[' || char(" + ", ".join(str(c) for c in (*range(1, 32), 34, 92)) + ") || ']*'"


def _json_list(column: str) -> str:
    # field paths joined by commas, as a JSON array, where each path is its own JSON; NULL where
    # one holds what JSON escapes (SQLite would read the escape, not the text): the entry is then
    # checked by its definition instead
    return (f"""CASE WHEN {column} = '' THEN json_array() WHEN {column} GLOB {_ESCAPED} THEN NULL """
            f"""ELSE json('["' || replace({column}, ',', '","') || '"]') END""")


# An entry's canonical JSON built by SQLite itself: the same bytes as ``LogEntry.canonical`` for
# the entries the gateway writes. It only speeds verification up: where its bytes do not give the
# stored hash, the entry is read whole and checked again with ``LogEntry.canonical``, the definition.
_SQL_CANONICAL = (
    "json_object('at', at, 'batch_id', batch_id, 'connector', connector, 'counterpart', counterpart, "
    f"'digest', digest, 'event', event, 'fields', {_json_list('fields')}, 'masked', {_json_list('masked')}, "
    "'purpose', purpose, 'reason', reason, 'record_id', record_id, 'record_type', record_type, 'rule', rule, "
    "'seq', seq, 'source', source, 'version', version)")


class SQLiteStore(SQLStore):
    """Records, quarantine, cursors and the exchange log in one SQLite file."""

    MIGRATIONS = MIGRATIONS

    def __init__(self, path: str, *, log_hash: str = "sm3", clock: Clock = utc_now,
                 cipher: DataCipher | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        super().__init__(path, log_hash=log_hash, clock=clock, cipher=cipher, lease_seconds=lease_seconds)
        if path != ":memory:":
            _private_file(Path(path))
        self.path = path
        self._serving: int | None = None  # the lock file held while this store serves a gateway
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # every commit reaches the disk before we answer
            self._db.execute("PRAGMA busy_timeout=5000")
            # checkpoints run beside the writer (``checkpoint``), not inside whichever commit crosses
            # the threshold: a commit then costs its own fsync and nothing more
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._migrate()
        except (sqlite3.Error, StoreUnavailableError) as exc:
            raise StoreUnavailableError(f"无法打开存储 / cannot open the store {path}: {exc}") from exc

    @contextmanager
    def transaction(self, serial: bool = True, durable: bool = True) -> Iterator[sqlite3.Connection]:
        # every write is serial here: SQLite has one writer; one that need not be durable commits to
        # the WAL without waiting for the disk (it survives the process, not the machine, crashing)
        with self._lock, self.writer.timing() as taken:
            try:
                if not durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                taken()
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreUnavailableError(f"存储无法提交 / the store cannot commit: {exc}") from exc
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                if not durable:
                    self._db.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def query(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own, so that the console never waits on the writer."""
        if self.path == ":memory:":
            yield self._db
            return
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        try:
            yield db
        finally:
            db.close()

    def verify_worker(self) -> Callable[[str, str, int, int, int], Stretch] | None:
        return None if self.path == ":memory:" else _verify_stretch_at

    @staticmethod
    def bodies(db: Connection, first: int, last: int) -> list[Body] | None:
        """Entries ``first`` … ``last`` with their canonical JSON built by SQLite (``_SQL_CANONICAL``);
        ``None`` where a row holds a value SQLite's JSON cannot (a BLOB, which no entry holds)."""
        try:
            return list(db.execute(f"SELECT seq, prev_hash, hash, CAST(X'00' || {_SQL_CANONICAL} AS BLOB) "
                                   "FROM exchange_log WHERE seq BETWEEN ? AND ? ORDER BY seq", (first, last)))
        except sqlite3.OperationalError:
            return None

    def checkpoint(self) -> None:
        """Copy committed WAL frames into the database without blocking writers (PASSIVE)."""
        if self.path == ":memory:":
            return
        with sqlite3.connect(self.path, isolation_level=None) as checkpointer:
            checkpointer.execute("PRAGMA busy_timeout=1000")
            checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        checkpointer.close()

    def backup(self, target: Path) -> None:
        """A copy of the database as of one moment (``VACUUM INTO``: one read transaction, beside the
        writer), ready to be opened as it is."""
        if os.path.lexists(target):
            raise StoreUnavailableError(f"备份文件已存在 / {target} exists: name a new file")
        private = os.umask(0o077)  # SQLite creates the copy itself: readable by this user alone
        try:
            with self.reading() as db:
                db.execute("VACUUM INTO ?", (str(target),))
        finally:
            os.umask(private)

    def hold_for_serving(self) -> None:
        """Take the file for the one gateway that serves it (commands may still read and write it
        beside that gateway); ``StoreInUseError`` naming the gateway that holds it — its host,
        process and since when — if another does. The hold ends with the process or ``close``."""
        if self.path == ":memory:" or self._serving is not None:
            return
        lock = Path(self.path + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip() or "its holder unknown"
            os.close(fd)
            raise StoreInUseError(f"存储已被另一个网关占用 / the store {self.path} is in use by another gateway "
                                  f"({holder}): one gateway serves a SQLite file (several gateways share a PostgreSQL "
                                  "database)") from None
        os.ftruncate(fd, 0)
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"host {socket.gethostname()}, pid {os.getpid()}, since {since}\n".encode(), 0)
        self._serving = fd

    def close(self) -> None:
        """Checkpoint what remains and close the database (and the serving hold, if taken)."""
        if self._serving is not None:
            os.close(self._serving)
            self._serving = None
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def _private_file(path: Path) -> None:
    """Create the database file readable by the gateway's user alone (its folder 0700 if new);
    SQLite gives its WAL and shared-memory files the database's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(create_private(path))


def _verify_stretch_at(path: str, algorithm: str, first: int, last: int, chained: int) -> Stretch:
    """``verify_stretch`` in a worker process, on a read-only connection of its own."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return verify_stretch(db, algorithm, first, last, SQLiteStore.bodies, chained=chained)
    finally:
        db.close()
