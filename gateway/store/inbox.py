"""The inbox of pull consumers: the next page of records shared with a consumer, each as the
sharing it is given shows it (the first serving of each logged as delivered), reads counted
against the agreement's daily limit, and acknowledged cursors."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from gateway.exceptions import ReadLimitError
from gateway.exchange_log import LogEntry, delivery_entry
from gateway.store.base import Connection, Database, upsert
from gateway.store.log import routed_seqs
from gateway.store.model import InboxPage, Sharing, StoredRecord
from gateway.store.sealed import Sealed
from policy.rules import LOCAL

__all__ = ["Inbox"]


class Inbox:
    """Pages of records shared with pull consumers, and their cursors."""

    def __init__(self, store: Database, sealed: Sealed) -> None:
        self.store, self.sealed = store, sealed

    def page(self, consumer: str, after: int | None, limit: int, *, share: Callable[[dict[str, Any]], Sharing],
             per_day: int | None = None) -> InboxPage:
        """The next records shared with ``consumer`` after ``after`` (default: its acknowledged
        cursor), each as ``share`` decides and shapes it for the consumer now; the first serving of
        each is logged as delivered, one no longer allowed as denied. ``per_day``: the reads a day
        the agreement allows (``ReadLimitError`` past them)."""
        store = self.store
        now, at = store.clock(), store.now()
        with store.transaction() as db:
            _count_read(db, consumer, per_day, now)
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
            for seq, source, record_id, version, payload, status, due_by in rows:
                sharing = share(self.sealed.record(seq, version, payload))
                if sharing.shared is None:  # the agreement was withdrawn or has expired since routing
                    entries.append(delivery_entry("denied", at, consumer, sharing.record,
                                                  reason=sharing.decision.reason))
                    served.append(("denied", seq, consumer))
                    continue
                records.append(StoredRecord(seq, source, record_id, version, sharing.shared.record))
                if status == "pending":
                    entries.extend(sharing.delivered(at, consumer, due_by=due_by, now=now))
                    served.append(("served", seq, consumer))
            db.executemany("UPDATE deliveries SET status = ? WHERE seq = ? AND consumer = ?", served)
            following = rows[-1][0] if rows else after
            if rows:
                entries.append(LogEntry("pulled", at, connector=consumer,
                                        reason=f"{len(records)} records, seq {rows[0][0]}-{following}"))
            store.append(db, entries)
            seqs = routed_seqs(db, consumer, [(r.connector, r.record_id, r.version) for r in records])
            return InboxPage([dataclasses.replace(r, log_seq=s) for r, s in zip(records, seqs, strict=True)], following,
                             sum(1 for e in entries if e.event == "overdue"))

    def ack(self, consumer: str, cursor: int) -> int:
        """Mark everything up to ``cursor`` consumed; returns the acknowledged cursor."""
        with self.store.transaction() as db:
            row = db.execute("SELECT acked FROM cursors WHERE consumer = ?", (consumer,)).fetchone()
            acked = max(cursor, row[0] if row else 0)
            db.execute(upsert("cursors", ("consumer", "acked"), 1), (consumer, acked))
            self.store.append(db, [LogEntry("acked", self.store.now(), connector=consumer, reason=f"cursor {acked}")])
            return acked


def _count_read(db: Connection, consumer: str, per_day: int | None, now: dt.datetime) -> None:
    if per_day is None:
        return
    local = now.astimezone(LOCAL)
    day = local.date().isoformat()
    row = db.execute("SELECT count FROM reads WHERE consumer = ? AND day = ?", (consumer, day)).fetchone()
    count = (row[0] if row else 0) + 1
    if count > per_day:
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), LOCAL)
        raise ReadLimitError(per_day, max(1, int((midnight - local).total_seconds())))
    db.execute(upsert("reads", ("consumer", "day", "count"), 2), (consumer, day, count))
