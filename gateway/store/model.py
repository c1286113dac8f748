"""The values that go in and out of the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.exchange_log import EVENTS, LogEntry, delivery_entry, log_time
from schemas import load_schema_set

if TYPE_CHECKING:
    from policy import Decision, Shared

__all__ = ["Due", "InboxPage", "Incoming", "IngestOutcome", "LogFilter", "Quarantined", "Sharing", "SourceMark",
           "StoredRecord", "tally"]


class Incoming(NamedTuple):
    """A valid record ready to be stored: its key, its version (if the producer gave one), its digest.

    Named tuples for the per-record values: they are built for every record and pickled between
    the preparing processes and the server, where tuples cost a fraction of dataclasses."""

    position: int  # the record's index in its batch
    record_id: str
    record_type: str
    op: str
    version: int | None
    region_code: str
    sharing: str
    grade: str
    digest: str
    payload: bytes  # the normalised record as JSON, without its version (stored beside it)
    warnings: tuple[dict[str, str], ...] = ()
    # what routing a record nobody else could receive needs of it, without reading its payload
    occurred_at: str | None = None  # as the record gives it (a string), for its timeliness
    corrects: bool = False  # whether it names a record it corrects


class Quarantined(NamedTuple):
    """A rejected record kept with its errors (never silently dropped)."""

    position: int  # the record's index in its batch
    record_id: str | None
    record_type: str | None
    errors: list[dict[str, str]]
    payload: bytes


class SourceMark(NamedTuple):
    """Where a fetched batch came from, stored in the same transaction as its records, so that a
    source resumes exactly after what is stored: a polled system's cursor after the page, or a
    dropped file's digest with its report."""

    name: str  # "cursor", or "file:<sha256 of the file>"
    value: str
    label: str  # what the log's ``received`` entry says of the batch's origin (no payload values)


class IngestOutcome(NamedTuple):
    """What became of one record of a batch."""

    position: int  # the record's index in its batch
    record_id: str | None
    status: str  # accepted | duplicate | stale | rejected
    version: int | None = None
    seq: int | None = None
    errors: tuple[dict[str, str], ...] | list[dict[str, str]] = ()
    warnings: tuple[dict[str, str], ...] = ()
    log_seq: int | None = None  # the seq of its entry in the exchange log (stored, duplicate, stale, rejected)

    def as_dict(self) -> dict[str, Any]:
        """The per-record result of the push answer: ``seq`` is its log entry's, for its receipt."""
        out: dict[str, Any] = {"index": self.position, "record_id": self.record_id, "status": self.status}
        if self.version is not None:
            out["version"] = self.version
        if self.log_seq is not None:
            out["seq"] = self.log_seq
        if self.status == "rejected":
            out["errors"] = list(self.errors)
        out["warnings"] = list(self.warnings)
        return out


def tally(outcomes: list[IngestOutcome]) -> dict[str, int]:
    """How many records of a batch were accepted, duplicates, stale and rejected."""
    counts = {"accepted": 0, "duplicate": 0, "stale": 0, "rejected": 0}
    for outcome in outcomes:
        counts[outcome.status] += 1
    return counts


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A stored version of a record, as served to consumers."""

    seq: int
    connector: str
    record_id: str
    version: int
    record: dict[str, Any]
    log_seq: int | None = None  # the seq of the log entry that shared it with the consumer (its receipt)


class Due(NamedTuple):
    """A delivery waiting for its push: the record as stored, attempts so far, when it is due by."""

    seq: int
    record: dict[str, Any]
    attempts: int
    due_by: str | None
    log_seq: int | None = None  # the seq of the log entry that shared it with the consumer (its receipt)


class Sharing(NamedTuple):
    """What one stored record is for one consumer under the policy in force: the decision, and if it
    is allowed, the record as the consumer receives it (fields left out, masks applied) with the
    digest of exactly that."""

    record: dict[str, Any]  # as stored
    decision: Decision
    shared: Shared | None = None
    digest: str | None = None

    def delivered(self, at: str, consumer: str, *, due_by: str | None, now: dt.datetime) -> list[LogEntry]:
        """What the log says of the record given to ``consumer``: ``delivered``, with the rule, purpose,
        field paths shared and masked and the digest of what it received; and ``overdue`` besides
        when that is later than the rule's ``deliver_within`` allowed (``due_by``)."""
        shared, decision = self.shared, self.decision
        assert shared is not None
        omitted = f"omitted: {', '.join(shared.omitted)}"[:500] if shared.omitted else None
        entries = [delivery_entry("delivered", at, consumer, self.record, rule=decision.rule,
                                  purpose=decision.purpose, fields=shared.fields, masked=shared.masked,
                                  digest=self.digest, reason=omitted)]
        if due_by and now > dt.datetime.fromisoformat(due_by):
            entries.append(delivery_entry("overdue", at, consumer, self.record, rule=decision.rule,
                                          reason=f"due by {due_by}"))
        return entries


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of an inbox and the cursor after it."""

    records: list[StoredRecord]
    next: int
    overdue: int = 0  # records served for the first time later than their rule's deliver_within


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Filters of an exchange-log query; ``None`` means any."""

    since: str | None = None
    until: str | None = None
    connector: str | None = None
    counterpart: str | None = None
    record_type: str | None = None
    record_id: str | None = None
    event: str | None = None
    rule: str | None = None
    source: str | None = None

    @classmethod
    def of(cls, values: Mapping[str, object], *, is_connector: Callable[[str], bool],
           names: Mapping[str, str] | None = None) -> LogFilter:
        """The filter of whichever of its fields ``values`` names (a query, a form, a command's
        options), each stripped, a blank one meaning any; checked, so that a filter never quietly
        matches nothing: times read as ISO 8601 (any offset, or a date) and written as the log
        writes them, events among the log's events, record types among the interface's, and
        parties known (``is_connector``). ``ValueError`` naming the filter (as ``names`` calls it:
        a command's option, an API's parameter) otherwise."""
        given = {f.name: text.strip() for f in fields(cls) if isinstance(text := values.get(f.name), str)}
        chosen = {name: value for name, value in given.items() if value}
        called = {f.name: f.name for f in fields(cls)} | dict(names or {})
        for name in ("since", "until"):
            if name in chosen:
                chosen[name] = log_time(chosen[name], called[name])
        if (event := chosen.get("event")) is not None and event not in EVENTS:
            raise ValueError(f"未知的事件 / {called['event']}: unknown event {event!r} (the log's events: "
                             f"{', '.join(EVENTS)})")
        record_types = load_schema_set().types
        if (kind := chosen.get("record_type")) is not None and kind not in record_types:
            raise ValueError(f"未知的记录类型 / {called['record_type']}: unknown record type {kind!r} (known: "
                             f"{', '.join(sorted(record_types))})")
        for name in ("connector", "counterpart", "source"):
            if (party := chosen.get(name)) is not None and not is_connector(party):
                raise ValueError(f"未知的连接器 / {called[name]}: {party!r} is no connector of the configuration "
                                 "and names none in the log")
        return cls(**chosen)
