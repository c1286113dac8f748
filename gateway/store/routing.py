"""Stored records routed to their consumers: for each, the policy it is given names the candidates
(``Policy.routes``) and decides each one (``Policy.decide``); this writes what was decided — a
delivery row per consumer allowed (the outbox of a push consumer, the inbox of a pull one), a
``routed`` or ``denied`` entry for every candidate — inside the transaction that stored the records.
The matter catalogue that routing by matter reads is kept here too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from gateway.exchange_log import LogEntry, delivery_entry
from gateway.store.base import Connection, Database, upsert
from gateway.store.model import Incoming
from gateway.store.sealed import Sealed, change_binding
from policy import Route, local_today

if TYPE_CHECKING:
    from gateway.store.procedure import Procedure
    from policy import Policy

__all__ = ["Change", "Routing"]

# seq, producing connector, version, record type, payload (plaintext), and the record as prepared
# when it is routed as it is stored (``None``: read back from the store)
Change = tuple[int, str, int, str, bytes, Incoming | None]


class Routing:
    """Where stored records go, under the policy the caller holds in force."""

    def __init__(self, store: Database, sealed: Sealed) -> None:
        self.store, self.sealed = store, sealed
        self.procedure: Procedure | None = None  # what routing a record does to the sharing procedure

    def catch_up(self, policy: Policy) -> int:
        """Route with ``policy`` whatever was stored without one (stored while no policy was in
        force, or by a command); returns how many stored records that routed."""
        store, routed = self.store, 0
        while True:
            with store.transaction() as db:
                done = db.execute("SELECT seq FROM progress WHERE name = 'routed'").fetchone()
                rows = db.execute("SELECT seq, connector, version, record_type, payload FROM changes "
                                  "WHERE seq > ? ORDER BY seq LIMIT 2000", (done[0] if done else 0,)).fetchall()
                if rows:
                    entries: list[LogEntry] = []
                    changes = [(seq, source, version, record_type, self.sealed.open(payload, change_binding(seq)), None)
                               for seq, source, version, record_type, payload in rows]
                    self.route(db, store.now(), changes, entries, policy)
                    store.append(db, entries)
            if not rows:
                return routed
            routed += len(rows)

    def route(self, db: Connection, at: str, changes: Sequence[Change], entries: list[LogEntry],
              policy: Policy) -> None:
        """Route stored changes in order: delivery rows for the consumers allowed them, and to
        ``entries`` a log entry for every consumer routed or denied."""
        today = local_today(self.store.clock())
        deliveries: list[tuple[Any, ...]] = []
        catalogue, producer = partial(_matter_departments, db), partial(_producer, db)
        for seq, source, version, record_type, payload, prepared in changes:
            if record_type != "matter" and prepared is not None and not prepared.corrects \
                    and not policy.may_receive(source, record_type):
                # Nobody could receive it and it corrects nothing, so its payload need not be read:
                # all the procedure looks at in a record routed to nobody is when it occurred.
                if self.procedure is not None and policy.terms.watches(record_type):
                    brief = {"record_type": record_type, "record_id": prepared.record_id, "op": prepared.op,
                             "occurred_at": prepared.occurred_at, "version": version, "seq": seq}
                    self.procedure.on_routed(db, at, brief, source=source, seq=seq, given=(), policy=policy)
                continue
            record = {**orjson.loads(payload), "version": version, "seq": seq}
            if record["record_type"] == "matter":
                _catalogue(db, record)
            routes = policy.routes(record, source, catalogue=catalogue, producer=producer, today=today)
            if isinstance(record.get("corrects"), str):  # a correction goes to whoever had the record before
                routes += _earlier_recipients(db, source, record["record_id"], seq, routes)
            given: list[tuple[str, str]] = []
            for route in routes:
                decision = policy.decide(record, route.consumer, today)
                if not decision.allowed:
                    entries.append(delivery_entry("denied", at, route.consumer, record,
                                                  reason=f"{route.reason}: {decision.reason}"))
                    continue
                due_by = None
                if decision.deliver_within:
                    due_by = (dt.datetime.fromisoformat(record["received_at"])
                              + dt.timedelta(seconds=decision.deliver_within)).isoformat(timespec="milliseconds")
                deliveries.append((route.consumer, seq, route.reason, decision.rule, due_by))
                given.append((route.consumer, route.reason))
                entries.append(delivery_entry("routed", at, route.consumer, record, rule=decision.rule,
                                              purpose=decision.purpose, reason=route.reason))
            if self.procedure is not None:
                self.procedure.on_routed(db, at, record, source=source, seq=seq, given=given, policy=policy)
        db.executemany("INSERT INTO deliveries (consumer, seq, route, rule, status, due_by) "
                       "VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING", deliveries)
        db.execute(upsert("progress", ("name", "seq"), 1), ("routed", changes[-1][0]))

    def matter_departments(self, matter_code: str) -> list[str]:
        """The departments (lead first) of a matter in the catalogue routing reads."""
        with self.store.query() as db:
            return _matter_departments(db, matter_code)

    def producer(self, refers_to: Mapping[str, Any]) -> str | None:
        """The connector that produced the record a feedback refers to, if it is stored."""
        with self.store.query() as db:
            return _producer(db, refers_to)


def _earlier_recipients(db: Connection, source: str, record_id: str, seq: int,
                        routes: Sequence[Route]) -> list[Route]:
    """The consumers given an earlier version of a record and not routed this one already."""
    named = {r.consumer for r in routes}
    rows = db.execute("SELECT DISTINCT d.consumer FROM deliveries d JOIN changes c ON c.seq = d.seq WHERE "
                      "c.connector = ? AND c.record_id = ? AND c.seq < ? AND d.status IN ('served', 'delivered', "
                      "'pending') ORDER BY d.consumer", (source, record_id, seq)).fetchall()
    return [Route(r[0], "correction") for r in rows if r[0] not in named]


def _catalogue(db: Connection, matter: Mapping[str, Any]) -> None:
    data = matter.get("data") or {}
    code = data.get("matter_code")
    if matter.get("op") == "delete":
        db.execute("DELETE FROM matters WHERE matter_code = ?", (code,))
        return
    departments = [data.get("lead_department_code"), *(data.get("co_department_codes") or ())]
    db.execute(upsert("matters", ("matter_code", "departments"), 1), (code, ",".join(d for d in departments if d)))


def _matter_departments(db: Connection, matter_code: str) -> list[str]:
    row = db.execute("SELECT departments FROM matters WHERE matter_code = ?", (matter_code,)).fetchone()
    return row[0].split(",") if row else []


def _producer(db: Connection, refers_to: Mapping[str, Any]) -> str | None:
    named, record_id = refers_to.get("connector"), refers_to.get("record_id")
    sql = "SELECT connector FROM current_versions WHERE record_id = ?"
    row = db.execute(sql + " AND connector = ?", (record_id, named)).fetchone() if named else \
        db.execute(sql + " LIMIT 1", (record_id,)).fetchone()
    return str(row[0]) if row else None
