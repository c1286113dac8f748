"""The sharing procedure's terms (程序、时限、频次) as pure values: the time limits of requests and
objections, the feedback duties (``[[obligation]]``), the producers' timeliness, and which step of
a sharing request may follow which.

The configuration's ``[procedure]``, ``[[obligation]]``, ``[timeliness]`` and ``[calendar.YEAR]``
tables become one ``Terms``, part of the policy in force; the store and the scheduler count the
deadlines with it, and the HTTP rooms ask it which step is allowed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policy.calendar import Limit, WorkingCalendar, parse_limit
from policy.exceptions import CalendarUnknownError, ProcedureStepError
from policy.rules import known_record_types

__all__ = ["REQUEST_STEPS", "Obligation", "ProcedureLimits", "Terms", "next_request_status"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _limit(value: str) -> str:
    parse_limit(value)
    return value


class ProcedureLimits(_Strict):
    """The ``[procedure]`` table: the time limits of the sharing procedure and who is told of
    what is overdue."""

    # unconditional data: granted automatically once this compliance check has passed unrefused
    compliance_check: str = "2wd"
    # conditional data: the provider answers within this, or ``catalogue_answer`` when the data
    # must first be catalogued (the provider does not yet produce the record type requested)
    conditional_answer: str = "5wd"
    catalogue_answer: str = "10wd"
    # the coordinating body (an admin) decides a requester's objection to a refusal within this
    objection_decision: str = "10wd"
    # a producer answers a recipient's objection to a record (校核纠错) within this
    correction_answer: str = "5wd"
    # the connector told of every overdue request, objection and duty (督办), if any
    coordinator: str | None = None
    # how often the scheduler looks at the deadlines
    check_every_seconds: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("compliance_check", "conditional_answer", "catalogue_answer", "objection_decision",
                     "correction_answer")
    @classmethod
    def _limits(cls, value: str) -> str:
        return _limit(value)


class Obligation(_Strict):
    """A ``[[obligation]]``: a consumer given a record of ``record_type`` owes a ``feedback``
    record referring to it within ``within`` (e.g. a clue's lead department its handling)."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,80}$")
    record_type: str
    within: str
    # who owes it: these consumers (default: every consumer the record is routed to) …
    consumers: list[str] | None = None
    # … reached by these routes (``catalogue``: the lead and co-departments of a clue's matter,
    # ``target``, ``subscription``, ``grant``, ``reply``; default any)
    routes: list[str] | None = None
    # feedback of these kinds meets the duty (default any kind)
    kinds: list[str] | None = None
    remind_before: str | None = "1wd"
    # told when the duty is overdue (default the procedure's coordinator)
    escalate_to: str | None = None
    description: str | None = Field(default=None, max_length=200)

    @field_validator("within", "remind_before")
    @classmethod
    def _limits(cls, value: str | None) -> str | None:
        return value if value is None else _limit(value)

    @field_validator("record_type")
    @classmethod
    def _type(cls, value: str) -> str:
        return known_record_types([value])[0]

    def owed_by(self, consumer: str, route: str) -> bool:
        """Whether ``consumer``, reached by ``route``, owes this feedback."""
        return (self.consumers is None or consumer in self.consumers) and \
            (self.routes is None or route in self.routes)


class Terms:
    """The procedure's terms compiled: the calendar, the limits parsed, duties by record type."""

    def __init__(self, limits: ProcedureLimits | None = None, obligations: Iterable[Obligation] = (),
                 timeliness: Mapping[str, str] | None = None, calendar: WorkingCalendar | None = None) -> None:
        self.limits = limits or ProcedureLimits()
        self.calendar = calendar or WorkingCalendar()
        self.obligations = list(obligations)
        self.timeliness = {t: parse_limit(v) for t, v in (timeliness or {}).items()}
        known_record_types(list(self.timeliness))
        self._duties: dict[str, list[Obligation]] = {}
        for obligation in self.obligations:
            self._duties.setdefault(obligation.record_type, []).append(obligation)

    def limit(self, name: str) -> Limit:
        """One of the ``[procedure]`` limits, parsed."""
        return parse_limit(getattr(self.limits, name))

    def longest(self) -> list[tuple[str, Limit]]:
        """Every limit configured, named, for the check that the calendar covers them."""
        named = [(f"procedure.{n}", self.limit(n)) for n in (
            "compliance_check", "conditional_answer", "catalogue_answer", "objection_decision", "correction_answer")]
        named += [(f"obligation {o.id}.within", parse_limit(o.within)) for o in self.obligations]
        named += [(f"timeliness.{t}", limit) for t, limit in self.timeliness.items()]
        return named

    def check_calendar(self, now: dt.datetime) -> None:
        """Count every limit from ``now``: ``CalendarUnknownError`` naming the first that runs past
        the calendar (a deadline is refused here rather than guessed later)."""
        for name, limit in self.longest():
            try:
                self.calendar.deadline(now, limit)
            except CalendarUnknownError as exc:
                raise CalendarUnknownError(f"{name} = \"{limit}\": {exc}") from None

    def deadline(self, start: dt.datetime, limit: Limit | str) -> dt.datetime:
        """When ``limit`` from ``start`` runs out."""
        return self.calendar.deadline(start, parse_limit(limit) if isinstance(limit, str) else limit)

    def request_limit(self, sharing: str, catalogued: bool) -> Limit:
        """How long a request for data of this sharing class has before it is answered."""
        if sharing == "unconditional":
            return self.limit("compliance_check")
        return self.limit("conditional_answer" if catalogued else "catalogue_answer")

    def watches(self, record_type: str) -> bool:
        """Whether storing a record of this type concerns the procedure even if nobody receives it
        (its timeliness is measured; a feedback meets a duty)."""
        return record_type in self.timeliness or record_type == "feedback"

    def duties(self, record_type: str, consumer: str, route: str) -> list[Obligation]:
        """The feedback duties a consumer takes on when given a record of ``record_type``."""
        return [o for o in self._duties.get(record_type, ()) if o.owed_by(consumer, route)]

    def late(self, record: Mapping[str, Any], received: dt.datetime) -> tuple[Limit, dt.datetime] | None:
        """The limit and deadline ``record`` missed, if it came later than its type allows after it
        ``occurred_at``; ``None`` if it is in time, has no limit, or says no time that can be read."""
        limit = self.timeliness.get(str(record.get("record_type")))
        occurred = record.get("occurred_at")
        if limit is None or not isinstance(occurred, str):
            return None
        try:
            start = dt.datetime.fromisoformat(occurred)
        except ValueError:
            return None
        if start.tzinfo is None:
            return None
        deadline = self.calendar.deadline(start, limit)
        return (limit, deadline) if received > deadline else None


# status → {action: (status after, who may take it)}; ``provider`` includes an admin on its behalf
REQUEST_STEPS: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "submitted": {"approve": ("approved", frozenset({"provider", "admin"})),
                  "refuse": ("refused", frozenset({"provider", "admin"}))},
    "overdue": {"approve": ("approved", frozenset({"provider", "admin"})),
                "refuse": ("refused", frozenset({"provider", "admin"}))},
    "refused": {"object": ("objected", frozenset({"requester"}))},
    "objected": {"approve": ("approved", frozenset({"admin"})), "refuse": ("refused", frozenset({"admin"}))},
    "approved": {"revoke": ("revoked", frozenset({"provider", "admin"}))},
    "granted": {"revoke": ("revoked", frozenset({"provider", "admin"}))},
    "revoked": {},
}

def next_request_status(status: str, action: str, role: str, *, objected_before: bool = False) -> str:
    """The status a sharing request moves to when ``role`` takes ``action``; ``ProcedureStepError``
    saying why not otherwise (a refusal upheld on objection is final)."""
    steps = REQUEST_STEPS.get(status, {})
    if action not in steps:
        allowed = ", ".join(steps) or "nothing more"
        raise ProcedureStepError(f"申请状态为 {status}，不能 {action} / the request is {status}: it cannot be "
                                 f"{action}d now (allowed: {allowed})")
    after, roles = steps[action]
    if role not in roles:
        raise ProcedureStepError(f"{role} 不能对申请执行 {action} / a {role} cannot {action} a request that is "
                                 f"{status} (only {' or '.join(sorted(roles))})")
    if action == "object" and objected_before:
        raise ProcedureStepError("异议已裁决，不能再次提出 / the coordinating body has already decided an objection "
                                 "to this request: its refusal is final")
    return after
