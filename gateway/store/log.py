"""The exchange log read back: entries streamed by filter, searched newest first for the console,
one record's trail, daily volumes, the head, and the whole log verified (in worker processes for
long logs) with the one verifier, ``exchange_log.check_stretch``."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from itertools import pairwise, repeat
from typing import Any

from gateway.exceptions import LogIntegrityError
from gateway.exchange_log import (
    LOG_COLUMNS,
    Body,
    ChainCheck,
    LogEntry,
    Stretch,
    check_bodies,
    check_stretch,
    joined,
    row_canonical,
    row_entry,
)
from gateway.store.base import Connection, Database, log_head, pruned_through
from gateway.store.model import LogFilter
from gateway.store.tree import stored_tree_differs

__all__ = ["PRUNE_UNIT", "ExchangeLogStore", "routed_seqs", "verify_stretch"]

_VERIFY_STRETCH = 1 << 16  # entries a worker checks at a time (after the first, stretches are whole subtrees)
PRUNE_UNIT = 1 << 8  # entries are pruned in whole tiles of 256 leaves, whose rows keep their hashes
_PRUNE_STRETCH = 50_000 // PRUNE_UNIT * PRUNE_UNIT  # entries deleted a transaction
_PARALLEL_FROM = 200_000  # logs from this size are verified in several processes
_COLUMNS = ", ".join(LOG_COLUMNS)
# the filters of a query by the column each compares, besides ``connector`` (either side of an event)
_EQUAL = {"counterpart": "counterpart = ", "record_type": "record_type = ", "record_id": "record_id = ",
          "event": "event = ", "rule": "rule = ", "source": "source = "}


def _clauses(where: LogFilter | None) -> tuple[list[str], list[Any]]:
    """The ``WHERE`` clauses of ``where`` but its connector, and their arguments."""
    if where is None:
        return [], []
    clauses, args = [], []
    for column, value in (("at >= ", where.since), ("at < ", where.until),
                          *((sql, getattr(where, name)) for name, sql in _EQUAL.items())):
        if value is not None:
            clauses.append(column + "?")
            args.append(value)
    return clauses, args


class ExchangeLogStore:
    """The exchange log as the store holds it."""

    def __init__(self, store: Database) -> None:
        self.store = store

    def append(self, entries: list[LogEntry]) -> None:
        """Append entries that record no change of data (audit queries, configuration changes)."""
        with self.store.transaction() as db:
            self.store.append(db, entries)

    def entries(self, *, after: int = 0, where: LogFilter | None = None, limit: int | None = None) -> Iterator[
        LogEntry
    ]:
        """Entries after ``after`` matching ``where``, in order, streamed."""
        clauses, args = _clauses(where)
        clauses, args = ["seq > ?", *clauses], [after, *args]
        if where is not None and where.connector is not None:  # the events it took part in, on either side
            clauses.append("(connector = ? OR counterpart = ?)")
            args.extend((where.connector, where.connector))
        sql = f"SELECT {_COLUMNS} FROM exchange_log WHERE {' AND '.join(clauses)} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.store.reading() as reader:
            cursor = reader.execute(sql, args)
            while rows := cursor.fetchmany(2000):
                yield from (row_entry(r) for r in rows)

    def search(self, where: LogFilter, *, before: int | None = None, limit: int = 50) -> list[LogEntry]:
        """Entries matching ``where``, newest first, older than ``before``: each filter goes by its
        index, so that a page costs the same in a log of a thousand entries or of millions."""
        with self.store.reading() as db:
            low, high = _seq_bounds(db, where.since, where.until)
            if before is not None:
                high = min(high, before - 1)
            clauses, args = _clauses(where)
            clauses, args = ["seq BETWEEN ? AND ?", *clauses], [low, high, *args]
            sides = [""] if where.connector is None else [" AND connector = ?", " AND counterpart = ?"]
            found: dict[int, LogEntry] = {}
            for side in sides:  # a party on either side: two index scans, merged
                sql = (f"SELECT {_COLUMNS} FROM exchange_log WHERE {' AND '.join(clauses)}{side} "
                       "ORDER BY seq DESC LIMIT ?")
                extra = [where.connector] if side else []
                for row in db.execute(sql, [*args, *extra, limit]):
                    found[row[0]] = row_entry(row)
        return [found[seq] for seq in sorted(found, reverse=True)[:limit]]

    def trail(self, source: str, record_id: str, limit: int = 10_000) -> list[LogEntry]:
        """Every event of one record of ``source``, with the arrival of the batches it came in."""
        own = list(self.entries(where=LogFilter(record_id=record_id, source=source), limit=limit))
        batches = sorted({e.batch_id for e in own if e.batch_id})
        if not batches:
            return own
        with self.store.query() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM exchange_log WHERE event = 'received' AND source = ? "
                f"AND batch_id IN ({', '.join('?' * len(batches))})", (source, *batches)).fetchall()
        return sorted(own + [row_entry(r) for r in rows], key=lambda e: e.seq)

    def volume(self, since_day: str) -> list[tuple[str, str, str, int]]:
        """Records stored, rejected, delivered and pulled, by day and connector, from ``since_day``."""
        with self.store.reading() as db:
            return [tuple(r) for r in db.execute(
                "SELECT day, connector, event, count FROM volume WHERE day >= ? ORDER BY day, connector, event",
                (since_day,))]

    def event_counts(self, events: Sequence[str]) -> dict[str, int]:
        """How many entries of each of ``events`` the log holds."""
        with self.store.reading() as db:
            return {event: db.execute("SELECT count(*) FROM exchange_log WHERE event = ?", (event,)).fetchone()[0]
                    for event in events}

    def denials_by_rule(self, limit: int = 100) -> list[tuple[str | None, str, int]]:
        """Denied routes grouped by the rule or reason that denied them, most frequent first."""
        with self.store.reading() as db:
            return [tuple(r) for r in db.execute(
                "SELECT rule, reason, count(*) AS n FROM exchange_log WHERE event = 'denied' GROUP BY rule, reason "
                "ORDER BY n DESC LIMIT ?", (limit,))]

    def knows(self, configured: Collection[str]) -> Callable[[str], bool]:
        """Whether a party a filter names is one: a connector of ``configured``, or one an entry
        names as its connector or counterpart (an auditor, a connector since removed: two index
        lookups). For ``LogFilter.of``, on the store's thread."""
        def known(party: str) -> bool:
            if party in configured:
                return True
            with self.store.reading() as db:
                return any(db.execute(f"SELECT 1 FROM exchange_log WHERE {column} = ? LIMIT 1", (party,)).fetchone()
                           for column in ("connector", "counterpart"))
        return known

    def entry(self, seq: int) -> LogEntry | None:
        """The entry at ``seq``, if there is one."""
        with self.store.reading() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM exchange_log WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else row_entry(row)

    def receipted(self, connector: str, record_id: str, version: int | None = None, *,
                  as_consumer: bool = False) -> LogEntry | None:
        """The entry a receipt of ``connector`` about ``record_id`` proves: as its producer, the
        entry that stored it (its latest version, or ``version``); as a consumer, the ``routed``
        entry that shared it with it (the latest)."""
        event, column = ("routed", "connector") if as_consumer else ("stored", "source")
        sql = f"SELECT {_COLUMNS} FROM exchange_log WHERE record_id = ? AND event = ? AND {column} = ?"
        args: list[Any] = [record_id, event, connector]
        if version is not None:
            sql += " AND version = ?"
            args.append(version)
        with self.store.reading() as db:
            row = db.execute(sql + " ORDER BY seq DESC LIMIT 1", args).fetchone()
        return None if row is None else row_entry(row)

    def hash_at(self, seq: int) -> str | None:
        """The hash the log holds at ``seq``, or ``None`` if it has no such entry."""
        with self.store.query() as db:
            row = db.execute("SELECT hash FROM exchange_log WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def head(self) -> tuple[int, str]:
        """The last seq and hash of the exchange log."""
        with self.store.query() as db:
            return log_head(db)

    def last_before(self, moment: str) -> int:
        """The seq of the last entry written before ``moment`` (as the log writes times), ``0`` if none."""
        with self.store.reading() as db:
            return _seq_bounds(db, None, moment)[1]

    def pruned(self) -> tuple[int, str]:
        """Up to which seq the entries were archived and pruned from the store, and that entry's hash
        (``0`` and the genesis hash if none were)."""
        with self.store.query() as db:
            return pruned_through(db)

    def prune(self, through: int, archive: str, *, done: Callable[[int], None] | None = None) -> int:
        """Delete the entries up to ``through``, archived (``archive`` names the bundle holding the
        last of them), a stretch a transaction so that the writer is held only briefly, each
        recording how far it got; how many were deleted (``done`` told after each stretch). The tree
        keeps every hash: proofs, roots and receipts issued stay as they were. ``ValueError`` unless
        ``through`` ends a tile of 256 entries (whose row holds their leaves) before the head, which
        is always kept: the log continues from it."""
        deleted = 0
        while True:
            with self.store.transaction() as db:
                start, _ = pruned_through(db)
                head, _ = log_head(db)
                if through % PRUNE_UNIT or not start <= through < head:
                    raise ValueError(f"entries can be pruned up to a multiple of {PRUNE_UNIT} from {start} to before "
                                     f"the head, {head} (not {through})")
                end = min(through, start + _PRUNE_STRETCH)
                if end == start:
                    return deleted
                row = db.execute("SELECT hash FROM exchange_log WHERE seq = ?", (end,)).fetchone()
                count = db.execute("DELETE FROM exchange_log WHERE seq > ? AND seq <= ?", (start, end)).rowcount
                if row is None or count != end - start:
                    raise LogIntegrityError(f"交换日志缺少条目 / the log lacks entries between {start + 1} and {end}: "
                                            "run `supex log verify`")
                db.execute("INSERT INTO log_pruned (seq, hash, at, archive) VALUES (?, ?, ?, ?)",
                           (end, row[0], self.store.now(), archive))
            deleted += count
            if done is not None:
                done(deleted)

    def chained(self) -> int:
        """The last seq of the entries written before the log became a tree (hash-chained)."""
        with self.store.query() as db:
            return int(db.execute("SELECT seq FROM progress WHERE name = 'chained'").fetchone()[0])

    def verify(self, processes: int | None = None) -> Iterator[ChainCheck]:
        """Verify the whole log as it stands now, yielding progress after each stretch of entries and
        the outcome last, with the root of the tree the entries make. Stretches are checked side by
        side in ``processes`` worker processes (default: one a core, for large logs); each entry's
        hash depends only on its own row, so only the links between stretches, and the subtrees
        they make, are left to join here."""
        store = self.store
        total, chained = self.head()[0], self.chained()
        start, start_hash = self.pruned()  # archived before: the tree's subtrees stand for them
        before = tuple(store.tree.border(start))
        cuts = [start, *range((start // _VERIFY_STRETCH + 1) * _VERIFY_STRETCH, total, _VERIFY_STRETCH), total]
        ranges = [(a + 1, b) for a, b in pairwise(cuts) if a < b]
        workers = (os.cpu_count() or 1) if processes is None else processes
        worker = store.verify_worker()
        if worker is None or total < _PARALLEL_FROM or workers < 2:
            with store.reading() as db:
                yield from joined((verify_stretch(db, store.log_hash, a, b, store.bodies, chained=chained)
                                   for a, b in ranges), start_hash, store.log_hash, before)
            return
        # forked where this process runs no other thread (the command line): nothing to re-import;
        # spawned otherwise (a serving gateway), since forking beside running threads is unsafe
        method = "fork" if threading.active_count() == 1 and os.name == "posix" else "spawn"
        # the workers make no reference cycles: without the cyclic collector, which would walk the
        # rows of every stretch again and again as they are read, a stretch is checked in two thirds the time
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=gc.disable) as pool:
            yield from joined(pool.map(worker, repeat(store.location), repeat(store.log_hash),
                                       [a for a, _ in ranges], [b for _, b in ranges], repeat(chained)),
                              start_hash, store.log_hash, before)


def verify_stretch(db: Connection, algorithm: str, first: int, last: int,
                   bodies: Callable[[Connection, int, int], list[Body] | None] | None, *, chained: int = 0) -> Stretch:
    """Entries ``first`` … ``last`` of the database checked by ``check_stretch``. ``bodies`` reads
    them with their canonical JSON built by the database, which spares making a Python value of
    every column and lets the entries of the tree be checked a column at a time (``check_bodies``);
    without it, or where it cannot build them, each row is read whole."""
    rows = bodies(db, first, last) if bodies is not None else None
    tree = partial(stored_tree_differs, db)  # the tree proofs are read from, held to the entries
    if rows is None:
        cursor = db.execute(f"SELECT {_COLUMNS} FROM exchange_log WHERE seq BETWEEN ? AND ? ORDER BY seq",
                            (first, last))
        links = ((row[0], row[-2], row[-1], row_canonical(row))
                 for rows in iter(lambda: cursor.fetchmany(5000), []) for row in rows)
        return check_stretch(links, algorithm, first, last, chained=chained, tree=tree)
    if first > chained and (stretch := check_bodies(rows, algorithm, first, last, tree)) is not None:
        return stretch

    def canonical(seq: int) -> bytes | None:
        """Entry ``seq``'s canonical JSON by its definition (where the database's bytes did not hold)."""
        return row_canonical(db.execute(f"SELECT {_COLUMNS} FROM exchange_log WHERE seq = ?", (seq,)).fetchone())

    return check_stretch(((seq, prev_hash, stored, body[1:]) for seq, prev_hash, stored, body in rows), algorithm,
                         first, last, chained=chained, recheck=canonical, tree=tree)


def routed_seqs(db: Connection, consumer: str, records: Sequence[tuple[str, str, int]]) -> list[int | None]:
    """The seq of the ``routed`` entry that shared each ``(source, record_id, version)`` with
    ``consumer`` — the entry its receipt proves (the latest, if routed again) — in order."""
    found: dict[tuple[str, str, int], int] = {}
    ids = sorted({record_id for _, record_id, _ in records})
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = db.execute(f"SELECT seq, source, record_id, version FROM exchange_log WHERE record_id IN "
                          f"({', '.join('?' * len(chunk))}) AND event = 'routed' AND connector = ?",
                          (*chunk, consumer))
        for seq, source, record_id, version in rows:
            key = (source, record_id, version)
            found[key] = max(seq, found.get(key, 0))
    return [found.get(key) for key in records]


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
