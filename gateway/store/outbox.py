"""The outbox of push consumers: deliveries claimed (leased, so that several gateways on one
database never push the same row at once), delivered, withheld, failed and retried, given up on
(dead letters) and replayed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.exchange_log import LogEntry, delivery_entry
from gateway.store.base import Database
from gateway.store.log import routed_seqs
from gateway.store.model import Due, Sharing
from gateway.store.sealed import Sealed

__all__ = ["Outbox"]


class Outbox:
    """Push deliveries waiting, claimed, sent or given up on."""

    def __init__(self, store: Database, sealed: Sealed) -> None:
        self.store, self.sealed = store, sealed

    def due(self, consumer: str, now: float, limit: int, claimant: str = "") -> list[Due]:
        """Claim for ``claimant`` the deliveries to ``consumer`` waiting and due by ``now`` (epoch
        seconds), oldest first.

        A claim is a lease of ``lease_seconds``: no other gateway on the database takes these rows
        until it expires, and if this one dies before it has delivered them, another takes them
        over once it has (or the same gateway at once when it starts again: ``release_claims``)."""
        store = self.store
        with store.transaction(serial=False) as db:
            rows = db.execute(
                "SELECT d.seq, c.version, c.payload, d.attempts, d.due_by FROM deliveries d JOIN changes c "
                "ON c.seq = d.seq WHERE d.status = 'pending' AND d.consumer = ? AND d.next_at <= ? "
                f"AND d.lease_until <= ? ORDER BY d.seq LIMIT ?{store.CLAIM_SUFFIX}",
                (consumer, now, now, limit)).fetchall()
            db.executemany("UPDATE deliveries SET lease_until = ?, claimed_by = ? WHERE consumer = ? AND seq = ?",
                           [(now + store.lease_seconds, claimant, consumer, row[0]) for row in rows])
            due = [Due(seq, self.sealed.record(seq, version, payload), attempts, due_by)
                   for seq, version, payload, attempts, due_by in rows]
            seqs = routed_seqs(db, consumer, [(d.record["source"]["connector"], d.record["record_id"],
                                               d.record["version"]) for d in due])
        return [d._replace(log_seq=s) for d, s in zip(due, seqs, strict=True)]

    def release(self, consumer: str, items: Sequence[Due]) -> None:
        """Give claimed deliveries back untried, for the next round here or elsewhere."""
        with self.store.transaction(serial=False) as db:
            db.executemany("UPDATE deliveries SET lease_until = 0 WHERE consumer = ? AND seq = ?",
                           [(consumer, item.seq) for item in items])

    def release_claims(self, claimant: str) -> int:
        """Give back every claim ``claimant`` holds: it is starting, so whatever it claimed before
        died with its previous process. Returns how many."""
        with self.store.transaction(serial=False) as db:
            return int(db.execute("UPDATE deliveries SET lease_until = 0 WHERE claimed_by = ? AND lease_until > 0",
                                  (claimant,)).rowcount)

    def next_due(self, consumer: str) -> float | None:
        """When the next waiting delivery to ``consumer`` falls due (epoch seconds), if any waits: its
        next attempt, or when another gateway's claim on it runs out."""
        with self.store.query() as db:
            row = db.execute("SELECT min(CASE WHEN next_at > lease_until THEN next_at ELSE lease_until END) "
                             "FROM deliveries WHERE status = 'pending' AND consumer = ?", (consumer,)).fetchone()
        return None if row[0] is None else float(row[0])

    def delivered(self, consumer: str, sent: Sequence[tuple[Due, Sharing]]) -> int:
        """Pushed and acknowledged by the consumer: logged with what was shared, overdue ones flagged
        (their number is returned); the rows are done with."""
        store = self.store
        now, at = store.clock(), store.now()
        with store.transaction() as db:
            entries: list[LogEntry] = []
            for item, sharing in sent:
                entries.extend(sharing.delivered(at, consumer, due_by=item.due_by, now=now))
            db.executemany("DELETE FROM deliveries WHERE consumer = ? AND seq = ?",
                           [(consumer, item.seq) for item, _ in sent])
            store.append(db, entries)
            return sum(1 for e in entries if e.event == "overdue")

    def withheld(self, consumer: str, items: Sequence[tuple[Due, str]]) -> None:
        """No longer allowed when their turn came (a rule withdrawn or expired): denied, not sent."""
        at = self.store.now()
        with self.store.transaction() as db:
            db.executemany("UPDATE deliveries SET status = 'denied' WHERE consumer = ? AND seq = ?",
                           [(consumer, item.seq) for item, _ in items])
            self.store.append(db, [delivery_entry("denied", at, consumer, item.record, reason=why)
                                   for item, why in items])

    def failed(self, consumer: str, items: Sequence[Due], error: str, retry_at: float, dead: bool) -> None:
        """A push attempt failed: retried at ``retry_at``, or moved to the dead letters."""
        at = self.store.now()
        with self.store.transaction() as db:
            db.executemany("UPDATE deliveries SET attempts = attempts + 1, next_at = ?, last_error = ?, status = ?, "
                           "lease_until = 0 WHERE consumer = ? AND seq = ?",
                           [(retry_at, error[:500], "dead" if dead else "pending", consumer, i.seq) for i in items])
            entries = [delivery_entry("delivery_failed", at, consumer, i.record, reason=error[:500]) for i in items]
            if dead:
                entries += [delivery_entry("dead_lettered", at, consumer, i.record,
                                           reason=f"after {i.attempts + 1} attempts") for i in items]
            self.store.append(db, entries)

    def dead_letters(self, consumer: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Deliveries given up on, oldest first."""
        with self.store.query() as db:
            rows = db.execute(
                "SELECT d.consumer, d.seq, c.connector, c.record_id, c.record_type, c.version, d.attempts, "
                "d.last_error FROM deliveries d JOIN changes c ON c.seq = d.seq WHERE d.status = 'dead' "
                f"{'' if consumer is None else 'AND d.consumer = ? '}ORDER BY d.consumer, d.seq LIMIT ?",
                (limit,) if consumer is None else (consumer, limit)).fetchall()
        keys = ("consumer", "seq", "source", "record_id", "record_type", "version", "attempts", "last_error")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def replay(self, consumer: str | None = None, seqs: Sequence[int] | None = None, by: str = "admin") -> int:
        """Send dead letters again (all, one consumer's, or the given seqs); returns how many."""
        at = self.store.now()
        with self.store.transaction() as db:
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
            self.store.append(db, [LogEntry("replayed", at, connector=r[0], counterpart=r[2], source=r[2],
                                            record_type=r[3], record_id=r[4], version=r[5], reason=f"by {by}")
                                   for r in rows])
        return len(rows)
