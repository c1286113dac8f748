"""The store's plumbing, written once over SQL that SQLite and PostgreSQL both speak.

``SQLStore`` holds what every concern of the store needs — connections, migrations, the clock,
appending to the exchange log — and one object per concern, each in a module of its own:

==============  ==================================================================================
``records``     batches stored (versions decided, quarantine, source marks, nonces), rejections
``routing``     stored records routed to consumers under the policy it is given (the outbox rows)
``outbox``      push deliveries claimed, delivered, failed, dead-lettered and replayed
``inbox``       pull consumers' pages and acknowledgements
``runtime``     sharing rules and connector states changed at run time; one gateway's turn
``log``         the exchange log read back, searched and verified
``tree``        the log's Merkle tree (grown with every append), its signed checkpoints, cosignatures
``procedure``   sharing requests, objections to records, feedback duties, notices, late records
``sealed``      payloads sealed at rest: opened, counted, sealed again under a new key
==============  ==================================================================================

Every method of a concern runs whole in one transaction, so a record and the exchange-log
entries about it are committed together or not at all. A backend (``SQLiteStore``,
``PostgresStore``) supplies the connections and its migrations:

- ``transaction()`` for a write. Writes that append to the exchange log or number stored
  versions are serialised, across every gateway on the database (SQLite's write lock, a
  PostgreSQL advisory lock), so that the log is one tree and seqs are in commit order: a
  consumer's cursor never passes a version that is yet to commit.
- ``transaction(serial=False)`` for a write that touches only its own rows: claiming push
  deliveries, where rows another gateway holds are skipped (``FOR UPDATE SKIP LOCKED``);
  ``durable=False`` for one that need not wait for the disk (the nonces of signed requests).
- ``query()`` and ``reading()`` for reads, the latter beside the writer.

Statements use ``?`` placeholders and standard ``ON CONFLICT`` upserts; the methods are plain
blocking functions, called from the gateway's store thread (``gateway.store.runner``). The store
holds no policy: whoever routes or shares passes the policy in force.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from gateway.encryption import DataCipher
from gateway.exchange_log import EVENTS, LOG_COLUMNS, Body, LogEntry, Stretch, moment_text
from gateway.store.base import DEFAULT_LEASE_SECONDS, Clock, Connection, WriterTimes, log_head, utc_now
from gateway.store.inbox import Inbox
from gateway.store.log import ExchangeLogStore
from gateway.store.outbox import Outbox
from gateway.store.procedure import Procedure
from gateway.store.records import Records
from gateway.store.routing import Routing
from gateway.store.runtime import Runtime
from gateway.store.sealed import Sealed
from gateway.store.tree import LogTree
from policy.rules import LOCAL

__all__ = ["VOLUME_EVENTS", "SQLStore", "procedure_series"]



def procedure_series(event: str) -> str | None:
    """Which of the procedure's items an event is a step of: ``requests``, ``objections``, ``duties``."""
    if event.startswith("request_"):
        return "requests"
    if event == "record_objected" or event.startswith("objection_"):
        return "objections"
    return "duties" if event.startswith("duty_") else None


# the events counted a day by connector for the console's charts: records, and the procedure's steps
VOLUME_EVENTS = frozenset({"stored", "rejected", "delivered", "pulled"}) | frozenset(
    e for e in EVENTS if procedure_series(e))


class SQLStore:
    """Connections, migrations and the log's appends, with one object per concern of the store."""

    MIGRATIONS: ClassVar[tuple[str, ...]]
    # what a claim of push deliveries adds so that rows another gateway is claiming are skipped
    CLAIM_SUFFIX: ClassVar[str] = ""

    def __init__(self, location: str, *, log_hash: str = "sm3", clock: Clock = utc_now,
                 cipher: DataCipher | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.location = location  # what the store was opened from: a file or a database URL
        self.log_hash = log_hash
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._lock = threading.RLock()
        self.writer = WriterTimes()
        self.sealed = Sealed(self, cipher)
        self.routing = Routing(self, self.sealed)
        self.records = Records(self, self.sealed, self.routing)
        self.outbox = Outbox(self, self.sealed)
        self.inbox = Inbox(self, self.sealed)
        self.runtime = Runtime(self)
        self.log = ExchangeLogStore(self)
        self.tree = LogTree(self)
        self.procedure = Procedure(self, self.sealed)
        self.routing.procedure = self.procedure

    # ---- what a backend provides ----------------------------------------------------------------

    def transaction(self, serial: bool = True, durable: bool = True) -> AbstractContextManager[Connection]:
        """A connection inside a write transaction, committed when the block ends."""
        raise NotImplementedError

    def query(self) -> AbstractContextManager[Connection]:
        """A connection for a short read."""
        raise NotImplementedError

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for a read that should not wait on the writer (the console, log queries)."""
        return self.query()

    def verify_worker(self) -> Callable[[str, str, int, int, int], Stretch] | None:
        """A function that verifies a stretch of the log from ``location`` in a worker process."""
        return None

    @staticmethod
    def bodies(db: Connection, first: int, last: int) -> list[Body] | None:
        """Entries ``first`` … ``last`` with their canonical JSON (after 0x00) built by the database,
        if it can build it (``None``: each row is read whole and its JSON made in Python)."""
        return None

    def hold_for_serving(self) -> None:
        """Take the store for the gateway about to serve it, where a backend allows one only."""

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
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for number, script in enumerate(self.MIGRATIONS[current:], current + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
        self.tree.catch_up()  # a log written before its tree existed gets it now

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        with self.query() as db:
            return int(db.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    def now(self) -> str:
        """The store's notion of now, as the log writes it."""
        return moment_text(self.clock())

    def append(self, db: Connection, entries: Sequence[LogEntry]) -> int:
        """Append ``entries`` to the exchange log inside the write transaction ``db``: each entry's
        hash is its leaf in the log's Merkle tree, ``H(0x00 || canonical JSON)``, linked to the one
        before by ``prev_hash``, and the tree grows by them in the same transaction. The seq before
        the first of them (entry ``n`` of them is at that seq plus ``n``)."""
        # the log continues from the head as it is now, read inside the serialised write: another
        # gateway or a command may have appended since this one last did
        seq, prev = log_head(db)
        size, head, rows, leaves = seq, prev, [], []
        h = self.tree.hash
        for entry in entries:
            seq += 1
            leaf = h(b"\x00" + entry.canonical(seq))
            digest = leaf.hex()
            leaves.append(leaf)
            rows.append((seq, entry.at, entry.event, entry.connector, entry.counterpart, entry.source,
                         entry.record_type, entry.record_id, entry.version, entry.batch_id, entry.rule, entry.purpose,
                         ",".join(entry.fields), ",".join(entry.masked), entry.digest, entry.reason, prev, digest))
            prev = digest
        if rows:
            db.executemany(f"INSERT INTO exchange_log ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * 18)})",
                           rows)
            self.tree.grow(db, size, leaves, heads=(head, prev))
        volume = Counter((_local_day(e.at), e.connector, e.event) for e in entries
                         if e.event in VOLUME_EVENTS and e.connector)
        if volume:
            db.executemany("INSERT INTO volume VALUES (?, ?, ?, ?) ON CONFLICT (day, connector, event) DO UPDATE "
                           "SET count = volume.count + excluded.count", [(*key, n) for key, n in volume.items()])
        return size

    def ping(self) -> bool:
        """Whether the store answers."""
        with self.query() as db:
            return bool(db.execute("SELECT 1").fetchone()[0] == 1)

    def counts(self) -> dict[str, int]:
        """Row counts for metrics: stored versions, quarantined records, log entries."""
        with self.query() as db:
            return {
                "records": db.execute("SELECT count(*) FROM changes").fetchone()[0],
                "quarantined": db.execute("SELECT count(*) FROM quarantine").fetchone()[0],
                "log_entries": log_head(db)[0],
            }



@lru_cache(maxsize=64)
def _local_day(at: str) -> str:
    """The day in the province's calendar of a UTC time as the log writes it."""
    return dt.datetime.fromisoformat(at).astimezone(LOCAL).date().isoformat()
