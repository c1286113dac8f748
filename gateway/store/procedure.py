"""The sharing procedure kept: sharing requests, objections to records (校核纠错) and feedback
duties, one row an item with its status, deadline and history; the notices the gateway gives
parties about them; the records received later than their type allows.

Every step is a change of one item's status, made in one transaction with its exchange-log entry
(the actor as ``connector``, the other party as ``counterpart``, the item's id as ``batch_id``)
and the notices it gives. A step names the status it expects: a step raced by another (two
decisions at once, a decision and the scheduler) finds the status moved and is refused.

The hooks that run inside the transaction storing and routing records (``on_routed``) open the
duties a record brings, meet those a feedback record answers, resolve the objection a corrected
version names and mark a record that came late.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.exchange_log import LogEntry, moment_text
from gateway.store.base import Connection, Database, upsert
from gateway.store.sealed import Sealed
from policy.calendar import SHANGHAI, parse_limit
from policy.exceptions import CalendarUnknownError

if TYPE_CHECKING:
    from policy import Policy
    from policy.procedure import Obligation, Terms

__all__ = ["ITEM_COLUMNS", "QUALITY_FIGURES", "Notice", "Procedure", "Step", "item_id", "month_span", "quality_rows"]

ITEM_COLUMNS = ("id", "kind", "status", "party", "counterpart", "record_type", "record_id", "source", "seq",
                "opened_at", "due_at", "remind_at", "escalated_at", "closed_at", "rule", "body", "history")
QUALITY_FIGURES = ("accepted", "rejected", "late", "corrected", "feedback_due", "feedback_late")
OPEN = ("submitted", "overdue", "objected", "open")  # statuses with a deadline still running or run out


def item_id(kind: str, *key: str) -> str:
    """A new item's id (``req-…``, ``obj-…``), or a duty's, derived from what it is owed on so that
    routing a record twice opens it once."""
    prefix = {"request": "req", "objection": "obj", "duty": "duty"}[kind]
    if key:
        return f"{prefix}-{hashlib.sha256(chr(31).join(key).encode()).hexdigest()[:16]}"
    return f"{prefix}-{secrets.token_hex(8)}"


def _time(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment_text(moment)


@dataclass
class Notice:
    """What the gateway tells a connector about an item: a request to answer, an objection to a
    record of its, a duty coming due, something overdue (督办)."""

    connector: str
    kind: str
    item: str
    body: dict[str, Any]


@dataclass
class Step:
    """One step of an item: its status from ``expect`` to ``status``, who took it, the log entry's
    event and reason, what more the item's row and body gain, the notices it gives."""

    event: str
    actor: str
    status: str | None = None
    expect: tuple[str, ...] = ()
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)  # kept in the history (no payload values)
    columns: dict[str, Any] = field(default_factory=dict)  # due_at, escalated_at, rule, closed_at …
    body: dict[str, Any] = field(default_factory=dict)  # merged into the item's body
    notices: list[Notice] = field(default_factory=list)


def _row(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(ITEM_COLUMNS, row, strict=True))
    item["body"], item["history"] = orjson.loads(item["body"]), orjson.loads(item["history"])
    return item


class Procedure:
    """Requests, objections and duties, their steps, notices and late records."""

    def __init__(self, store: Database, sealed: Sealed) -> None:
        self.store, self.sealed = store, sealed

    # ---- items ----------------------------------------------------------------------------------

    def open(self, item: Mapping[str, Any], step: Step) -> dict[str, Any]:
        """Keep a new item with its first step."""
        with self.store.transaction() as db:
            self._insert(db, self.store.now(), item, step)
            found = self._get(db, str(item["id"]))
        assert found is not None
        return found

    def _insert(self, db: Connection, at: str, item: Mapping[str, Any], step: Step) -> bool:
        values = {**dict.fromkeys(ITEM_COLUMNS), "opened_at": at, **item}
        values["status"] = step.status or values["status"]
        values.update(step.columns)
        values["body"] = orjson.dumps({**(item.get("body") or {}), **step.body}).decode()
        values["history"] = orjson.dumps([self._history(at, step)]).decode()
        inserted = db.execute(f"INSERT INTO procedure_items ({', '.join(ITEM_COLUMNS)}) VALUES "
                              f"({', '.join('?' * len(ITEM_COLUMNS))}) ON CONFLICT DO NOTHING",
                              [values[c] for c in ITEM_COLUMNS]).rowcount
        if inserted:
            self._log(db, at, values, step)
        return bool(inserted)

    @staticmethod
    def _history(at: str, step: Step) -> dict[str, Any]:
        entry = {"at": at, "step": step.event, "by": step.actor, "status": step.status, **step.detail}
        if step.reason:
            entry["reason"] = step.reason
        return entry

    def _log(self, db: Connection, at: str, item: Mapping[str, Any], step: Step) -> None:
        counterpart = item["counterpart"] if step.actor == item["party"] else item["party"]
        body = item["body"] if isinstance(item["body"], dict) else orjson.loads(item["body"])
        self.store.append(db, [LogEntry(
            step.event, at, connector=step.actor, counterpart=counterpart, source=item.get("source"),
            record_type=item.get("record_type"), record_id=item.get("record_id"), batch_id=str(item["id"]),
            rule=step.columns.get("rule") or item.get("rule"), purpose=body.get("purpose"),
            reason=(step.reason or "")[:500] or None)])
        db.executemany("INSERT INTO notices (connector, at, kind, item, body) VALUES (?, ?, ?, ?, ?)",
                       [(n.connector, at, n.kind, n.item, orjson.dumps(n.body).decode()) for n in step.notices])

    def get(self, item: str) -> dict[str, Any] | None:
        """One item with its history."""
        with self.store.query() as db:
            return self._get(db, item)

    @staticmethod
    def _get(db: Connection, item: str) -> dict[str, Any] | None:
        row = db.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM procedure_items WHERE id = ?", (item,)).fetchone()
        return None if row is None else _row(row)

    def step(self, item: str, step: Step, *, rule: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Take ``step`` on ``item`` if its status is still one ``step.expect`` names (``None``
        otherwise: nothing kept), with its log entry, notices and, for a grant or a revocation, the
        sharing rule kept as it now is (with its ``config_changed`` entry)."""
        with self.store.transaction() as db:
            return self._step(db, self.store.now(), item, step, rule)

    def _step(self, db: Connection, at: str, item: str, step: Step,
              rule: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        current = self._get(db, item)
        if current is None or (step.expect and current["status"] not in step.expect):
            return None
        body = {**current["body"], **step.body}
        history = [*current["history"], self._history(at, step)]
        columns = {"status": step.status or current["status"], **step.columns, "body": orjson.dumps(body).decode(),
                   "history": orjson.dumps(history).decode()}
        moved = db.execute(f"UPDATE procedure_items SET {', '.join(f'{c} = ?' for c in columns)} "
                           "WHERE id = ? AND status = ?", [*columns.values(), item, current["status"]]).rowcount
        if not moved:
            return None
        if rule is not None:
            _keep_rule(db, at, rule, step.actor, self.store)
        after = {**current, **step.columns, "status": columns["status"], "body": body, "history": history}
        self._log(db, at, after, step)
        return after

    def listed(self, kind: str, *, status: str | None = None, party: str | None = None,
               counterpart: str | None = None, either: str | None = None, limit: int = 100,
               after: str | None = None) -> list[dict[str, Any]]:
        """Items of ``kind`` (newest first, after the id ``after`` when paging), filtered by status
        and by the party, the counterpart, or ``either`` of them; ``ValueError`` if ``after`` names no
        item of that kind (a cursor that names nothing would quietly list nothing)."""
        sql = f"SELECT {', '.join(ITEM_COLUMNS)} FROM procedure_items WHERE kind = ?"
        args: list[Any] = [kind]
        for column, value in (("status", status), ("party", party), ("counterpart", counterpart)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if either is not None:
            sql += " AND (party = ? OR counterpart = ?)"
            args += [either, either]
        with self.store.reading() as db:
            if after is not None:
                cursor = db.execute("SELECT opened_at, id FROM procedure_items WHERE id = ? AND kind = ?",
                                    (after, kind)).fetchone()
                if cursor is None:
                    raise ValueError(f"no {kind} {after!r} to page after")
                sql += " AND (opened_at, id) < (?, ?)"
                args += [cursor[0], cursor[1]]
            sql += " ORDER BY opened_at DESC, id DESC LIMIT ?"
            return [_row(r) for r in db.execute(sql, [*args, limit]).fetchall()]

    def due(self, now: dt.datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Open items whose deadline, or a duty's reminder, has come by ``now`` and not been acted on."""
        at = _time(now)
        marks = ", ".join("?" * len(OPEN))
        with self.store.query() as db:
            rows = db.execute(
                f"SELECT {', '.join(ITEM_COLUMNS)} FROM procedure_items WHERE status IN ({marks}) AND "
                "((due_at <= ? AND escalated_at IS NULL) OR (remind_at <= ?)) ORDER BY due_at LIMIT ?",
                [*OPEN, at, at, limit]).fetchall()
        return [_row(r) for r in rows]

    def received(self, consumer: str, record_id: str, source: str | None) -> list[
        tuple[str, str, int, int, dict[str, Any]]
    ]:
        """The latest version of ``record_id`` given to ``consumer`` (served or pushed), per
        producer: (producer, record type, version, seq, the record as stored)."""
        sql = ("SELECT c.connector, c.record_type, c.version, c.seq, c.payload FROM deliveries d JOIN changes c ON "
               "c.seq = d.seq WHERE d.consumer = ? AND c.record_id = ? AND d.status IN ('served', 'delivered')")
        args: list[Any] = [consumer, record_id]
        if source is not None:
            sql += " AND c.connector = ?"
            args.append(source)
        with self.store.query() as db:
            rows = db.execute(sql + " ORDER BY c.seq DESC", args).fetchall()
        latest: dict[str, tuple[str, str, int, int, dict[str, Any]]] = {}
        for connector, record_type, version, seq, payload in rows:
            if connector not in latest:
                latest[connector] = (connector, record_type, version, seq, self.sealed.record(seq, version, payload))
        return list(latest.values())

    # ---- notices ----------------------------------------------------------------------------------

    def notices(self, connector: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """The notices given to ``connector`` after the id ``after``, oldest first."""
        with self.store.reading() as db:
            rows = db.execute("SELECT id, at, kind, item, body FROM notices WHERE connector = ? AND id > ? "
                              "ORDER BY id LIMIT ?", (connector, after, limit)).fetchall()
        return [{"id": r[0], "at": r[1], "kind": r[2], "item": r[3], **orjson.loads(r[4])} for r in rows]

    def unsent(self, connectors: Iterable[str], limit: int = 100) -> list[dict[str, Any]]:
        """Notices not yet handed to ``connectors`` (pushed, or given with an inbox page), oldest first."""
        names = list(connectors)
        if not names:
            return []
        with self.store.query() as db:
            rows = db.execute(f"SELECT id, connector, at, kind, item, body FROM notices WHERE sent_at IS NULL AND "
                              f"connector IN ({', '.join('?' * len(names))}) ORDER BY id LIMIT ?",
                              [*names, limit]).fetchall()
        return [{"id": r[0], "connector": r[1], "at": r[2], "kind": r[3], "item": r[4], **orjson.loads(r[5])}
                for r in rows]

    def hand_over(self, connector: str, limit: int = 100) -> list[dict[str, Any]]:
        """The notices not yet handed to ``connector``, marked handed over (a pull connector's, with
        its inbox page)."""
        notices = self.unsent([connector], limit)
        if notices:
            self.sent([n["id"] for n in notices])
        return [{k: v for k, v in n.items() if k != "connector"} for n in notices]

    def sent(self, ids: Sequence[int]) -> None:
        """Mark notices handed over."""
        with self.store.transaction(serial=False) as db:
            db.executemany("UPDATE notices SET sent_at = ? WHERE id = ?", [(self.store.now(), i) for i in ids])

    # ---- what storing and routing records does to the procedure ------------------------------------

    def on_routed(self, db: Connection, at: str, record: Mapping[str, Any], *, source: str, seq: int,
                  given: Sequence[tuple[str, str]], policy: Policy) -> None:
        """Inside the transaction that stores and routes ``record`` (``given``: the consumers
        allowed it, with their routes): open the feedback duties it brings, meet those a feedback
        answers, resolve the objection a corrected version names, mark it if it came late."""
        terms = policy.terms
        self._late(db, at, record, source=source, seq=seq, terms=terms)
        if record.get("op") != "delete":
            for consumer, route in given:
                for duty in terms.duties(str(record.get("record_type")), consumer, route):
                    self._open_duty(db, at, record, source=source, seq=seq, consumer=consumer, route=route,
                                    duty=duty, terms=terms)
        if record.get("record_type") == "feedback":
            self._feedback(db, at, record, source)
        corrects = record.get("corrects")
        if isinstance(corrects, str):
            self._corrected(db, at, corrects, record, source=source, seq=seq)

    def _late(self, db: Connection, at: str, record: Mapping[str, Any], *, source: str, seq: int,
              terms: Terms) -> None:
        """Mark ``record`` late if it came later than its type allows after it occurred (a correction
        answering an objection is not a late report: the record it corrects was reported)."""
        if record.get("corrects"):
            return
        try:
            late = terms.late(record, dt.datetime.fromisoformat(at))
        except CalendarUnknownError:
            return  # an occurred_at beyond the known calendar is in the future: not late
        if late is None:
            return
        limit, due = late
        record_type, record_id = record.get("record_type"), record.get("record_id")
        db.execute("INSERT INTO late_records (seq, connector, record_type, record_id, received_at, occurred_at, "
                   "due_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (seq, source, record_type, record_id, at, record.get("occurred_at"), _time(due)))
        self.store.append(db, [LogEntry("late", at, connector=source, source=source, record_type=record_type,
                                        record_id=record_id, version=record.get("version"),
                                        reason=f"received after {limit.described} (due {_time(due)})")])

    def _open_duty(self, db: Connection, at: str, record: Mapping[str, Any], *, source: str, seq: int,
                   consumer: str, route: str, duty: Obligation, terms: Terms) -> None:
        """Open the duty ``consumer`` takes on, given ``record`` by ``route`` (once: its id is derived
        from what it is owed on). A deadline the calendar cannot count yet is left unset and said so."""
        received = dt.datetime.fromisoformat(at)
        unknown = ""
        try:
            due: dt.datetime | None = terms.deadline(received, duty.within)
        except CalendarUnknownError as exc:
            due, unknown = None, f"; NO DEADLINE SET: {exc}"
        remind = terms.calendar.before(due, parse_limit(duty.remind_before)) \
            if duty.remind_before and due is not None else None
        record_type, record_id = str(record.get("record_type")), str(record.get("record_id"))
        item = {"id": item_id("duty", duty.id, consumer, source, record_id), "kind": "duty", "status": "open",
                "party": consumer, "counterpart": source, "record_type": record_type, "record_id": record_id,
                "source": source, "seq": seq, "due_at": _time(due),
                "remind_at": _time(remind) if remind and remind > received else None,
                "body": {"obligation": duty.id, "within": duty.within, "route": route, "kinds": duty.kinds,
                         "escalate_to": duty.escalate_to or terms.limits.coordinator,
                         "description": duty.description}}
        reason = f"{duty.id}: feedback due within {parse_limit(duty.within).described}{unknown}"
        self._insert(db, at, item, Step("duty_opened", "gateway", "open", reason=reason[:500]))

    def _feedback(self, db: Connection, at: str, record: Mapping[str, Any], source: str) -> None:
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        assert isinstance(data, dict)
        refers = data.get("refers_to") if isinstance(data.get("refers_to"), dict) else {}
        assert isinstance(refers, dict)
        sql = "SELECT id, due_at, body FROM procedure_items WHERE kind = 'duty' AND party = ? AND record_id = ? AND " \
              "status IN ('open', 'overdue')"
        args = [source, refers.get("record_id")]
        if refers.get("connector"):
            sql += " AND source = ?"
            args.append(refers["connector"])
        for duty, due_at, body in db.execute(sql, args).fetchall():
            kinds = orjson.loads(body).get("kinds")
            if kinds and data.get("kind") not in kinds:
                continue
            in_time = due_at is None or at <= due_at
            self._step(db, at, duty, Step("duty_met", source, "met", expect=("open", "overdue"), columns={
                "closed_at": at}, body={"met_by": record.get("record_id"), "in_time": in_time},
                reason=f"feedback {record.get('record_id')} ({data.get('kind')})" + ("" if in_time else ", late")))

    def _corrected(self, db: Connection, at: str, objection: str, record: Mapping[str, Any], *, source: str,
                   seq: int) -> None:
        found = self._get(db, objection)
        if found is None or found["kind"] != "objection" or found["source"] != source or \
                found["record_id"] != record.get("record_id") or found["status"] not in ("open", "overdue"):
            why = "no such objection" if found is None or found["kind"] != "objection" else (
                "it concerns another record" if found["source"] != source or
                found["record_id"] != record.get("record_id") else f"it is {found['status']} already")
            self.store.append(db, [LogEntry(
                "objection_unmatched", at, connector=source, source=source, record_type=record.get("record_type"),
                record_id=record.get("record_id"), version=record.get("version"), batch_id=objection,
                reason=f"the version names objection {objection}, but {why}: the version is stored, "
                       "no objection is resolved")])
            db.execute("INSERT INTO notices (connector, at, kind, item, body) VALUES (?, ?, ?, ?, ?)",
                       (source, at, "correction_unmatched", objection, orjson.dumps({
                           "record_id": record.get("record_id"), "reason": why}).decode()))
            return
        self._step(db, at, objection, Step(
            "objection_corrected", source, "corrected", expect=("open", "overdue"),
            columns={"closed_at": at}, body={"corrected_by": {"version": record.get("version"), "seq": seq}},
            reason=f"corrected by version {record.get('version')}",
            notices=[Notice(found["party"], "objection_corrected", objection, {
                "record_id": record.get("record_id"), "source": source, "version": record.get("version")})]))

    # ---- quality ------------------------------------------------------------------------------

    def quality(self, start: str, end: str) -> dict[str, dict[str, int]]:
        """Per producing connector, between the UTC times ``start`` and ``end``: records received,
        accepted, rejected, late; objections corrected; feedback duties due, and met late or overdue."""
        figures: dict[str, dict[str, int]] = {}

        def add(rows: Iterable[Sequence[Any]], name: str) -> None:
            for connector, count in rows:
                figures.setdefault(connector, {}).setdefault(name, 0)
                figures[connector][name] += int(count)

        with self.store.reading() as db:
            span = (start, end)
            add(db.execute("SELECT connector, count(*) FROM changes WHERE received_at >= ? AND received_at < ? "
                           "GROUP BY connector", span).fetchall(), "accepted")
            add(db.execute("SELECT connector, count(*) FROM quarantine WHERE received_at >= ? AND received_at < ? "
                           "GROUP BY connector", span).fetchall(), "rejected")
            add(db.execute("SELECT connector, count(*) FROM late_records WHERE received_at >= ? AND received_at < ? "
                           "GROUP BY connector", span).fetchall(), "late")
            add(db.execute("SELECT counterpart, count(*) FROM procedure_items WHERE kind = 'objection' AND "
                           "status = 'corrected' AND closed_at >= ? AND closed_at < ? GROUP BY counterpart",
                           span).fetchall(), "corrected")
            add(db.execute("SELECT party, count(*) FROM procedure_items WHERE kind = 'duty' AND due_at >= ? AND "
                           "due_at < ? GROUP BY party", span).fetchall(), "feedback_due")
            add(db.execute("SELECT party, count(*) FROM procedure_items WHERE kind = 'duty' AND due_at >= ? AND "
                           "due_at < ? AND (status = 'overdue' OR (status = 'met' AND closed_at > due_at)) "
                           "GROUP BY party", span).fetchall(), "feedback_late")
        return figures

    def quality_records(self, connector: str, figure: str, start: str, end: str,
                        limit: int = 1000) -> list[dict[str, Any]]:
        """The records (metadata only) behind one figure of ``quality``."""
        span = (connector, start, end, limit)
        queries = {
            "accepted": "SELECT seq, record_type, record_id, version, received_at FROM changes WHERE connector = ? "
                        "AND received_at >= ? AND received_at < ? ORDER BY seq LIMIT ?",
            "rejected": "SELECT id, record_type, record_id, batch_id, received_at FROM quarantine WHERE connector = ? "
                        "AND received_at >= ? AND received_at < ? ORDER BY id LIMIT ?",
            "late": "SELECT seq, record_type, record_id, occurred_at, received_at, due_at FROM late_records WHERE "
                    "connector = ? AND received_at >= ? AND received_at < ? ORDER BY seq LIMIT ?",
            "corrected": "SELECT id, record_type, record_id, party, closed_at FROM procedure_items WHERE kind = "
                         "'objection' AND status = 'corrected' AND counterpart = ? AND closed_at >= ? AND "
                         "closed_at < ? ORDER BY closed_at LIMIT ?",
            "feedback_due": "SELECT id, record_type, record_id, status, due_at, closed_at FROM procedure_items WHERE "
                            "kind = 'duty' AND party = ? AND due_at >= ? AND due_at < ? ORDER BY due_at LIMIT ?",
            "feedback_late": "SELECT id, record_type, record_id, status, due_at, closed_at FROM procedure_items WHERE "
                             "kind = 'duty' AND party = ? AND due_at >= ? AND due_at < ? AND (status = 'overdue' OR "
                             "(status = 'met' AND closed_at > due_at)) ORDER BY due_at LIMIT ?",
        }
        names = {"accepted": ("seq", "record_type", "record_id", "version", "received_at"),
                 "rejected": ("quarantine_id", "record_type", "record_id", "batch_id", "received_at"),
                 "late": ("seq", "record_type", "record_id", "occurred_at", "received_at", "due_at"),
                 "corrected": ("objection", "record_type", "record_id", "objected_by", "corrected_at"),
                 "feedback_due": ("duty", "record_type", "record_id", "status", "due_at", "met_at"),
                 "feedback_late": ("duty", "record_type", "record_id", "status", "due_at", "met_at")}
        with self.store.reading() as db:
            rows = db.execute(queries[figure], span).fetchall()
        return [dict(zip(names[figure], r, strict=True)) for r in rows]


def _keep_rule(db: Connection, at: str, rule: Mapping[str, Any], by: str, store: Database) -> None:
    """A sharing rule a procedure step grants or revokes, kept as the admin API keeps rules."""
    db.execute(upsert("runtime_rules", ("id", "body", "changed_at"), 1),
               (rule["id"], orjson.dumps(rule, default=str).decode(), at))
    change = "granted" if rule.get("enabled", True) else "revoked"
    store.append(db, [LogEntry("config_changed", at, counterpart=by, rule=str(rule["id"]),
                               reason=f"rule {change} ({rule.get('origin')})")])


def month_span(text: str | None, now: dt.datetime) -> tuple[str, str, str]:
    """A month (``2026-11``; default this month) as its name and its UTC bounds, the month being
    one of the province's calendar; ``ValueError`` otherwise."""
    local = now.astimezone(SHANGHAI)
    name = text or f"{local.year:04d}-{local.month:02d}"
    if not re.fullmatch(r"(19[7-9]\d|2\d\d\d)-(0[1-9]|1[0-2])", name):
        raise ValueError(f"month 应为 YYYY-MM / month must be a month such as 2026-11, not {name!r}")
    first = dt.datetime(int(name[:4]), int(name[5:]), 1, tzinfo=SHANGHAI)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return name, moment_text(first), moment_text(following)


def quality_rows(figures: dict[str, dict[str, int]], departments: dict[str, str]) -> list[dict[str, Any]]:
    """Each producing connector's figures with its department and its rates: 及时率 (records in
    time among those accepted) and 合格率 (accepted among received)."""
    rows = []
    for connector in sorted(figures):
        counts = {name: figures[connector].get(name, 0) for name in QUALITY_FIGURES}
        received = counts["accepted"] + counts["rejected"]
        rows.append({"connector": connector, "department_code": departments.get(connector), "received": received,
                     **counts,
                     "timeliness_rate": round((counts["accepted"] - counts["late"]) / counts["accepted"], 4)
                     if counts["accepted"] else None,
                     "acceptance_rate": round(counts["accepted"] / received, 4) if received else None,
                     "feedback_timeliness_rate": round(1 - counts["feedback_late"] / counts["feedback_due"], 4)
                     if counts["feedback_due"] else None})
    return rows
