"""The sharing procedure run: sharing requests and their decisions, objections to records
(校核纠错) and their answers, and the one scheduler that holds every party to its deadlines.

A request for data of a record type names the provider, the purpose, the scenario and the basis.
Unconditional data is granted automatically once the compliance check's time has passed without
a refusal; conditional data waits for the provider's answer, due within the configured working
days (longer when the provider must first catalogue it); data not to be shared is refused, but to
a system of record. An approval creates the sharing rule the request asked for (its ``origin``
names the request), a revocation disables it at once; both go through the policy in force.

``Deadlines.sweep`` is one round of the scheduler, at the time its clock says: grants fall due,
requests, objections and duties run out (overdue, escalated to the coordinator), reminders go
out, and notices are pushed to push connectors. Tests move the clock and call it; a serving
gateway runs it every ``check_every_seconds`` when it holds the turn (one gateway on a database).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import orjson
import structlog
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.exceptions import DeliveryFailedError, NotFoundError
from gateway.exchange_log import moment_text
from gateway.flow.in_force import PolicyInForce
from gateway.flow.sharing import share
from gateway.observability import Metrics
from gateway.store import SQLStore
from gateway.store.procedure import Notice, Step, item_id
from gateway.store.runner import StoreRunner
from policy import SharingRule, data_paths, local_today
from policy.exceptions import PolicyDefinitionError, ProcedureStepError
from policy.procedure import Terms, next_request_status
from policy.rules import known_record_types
from schemas import load_schema_set
from schemas.issues import points_to

__all__ = ["VIEWS", "Actor", "Deadlines", "DecisionBody", "ObjectionBody", "RequestBody", "SharingProcedure", "checked"]

log = structlog.get_logger("supex.procedure")
Clock = Callable[[], dt.datetime]


class Actor(NamedTuple):
    """Who takes a step: a connector (by id) or an admin (by name), as the log names them."""

    role: str  # connector | admin
    name: str

    @property
    def logged(self) -> str:
        """The name the log gives the actor: a connector's id, ``admin:<name>``."""
        return self.name if self.role == "connector" else f"admin:{self.name}"


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestBody(_Body):
    """``POST /v1/sharing-requests``: what a consumer asks of a provider, and why."""

    record_type: str
    provider: str = Field(pattern=r"^[a-z0-9-]{2,40}$")
    purpose: str = Field(min_length=1, max_length=200)
    scenario: str = Field(min_length=1, max_length=500)
    basis: str = Field(min_length=1, max_length=500)
    fields: list[str] | None = Field(default=None, min_length=1, max_length=500)
    regions: list[str] | None = Field(default=None, min_length=1, max_length=200)
    valid_until: dt.date | None = None  # without it, a grant lasts until revoked

    @field_validator("record_type")
    @classmethod
    def _type(cls, value: str) -> str:
        return known_record_types([value])[0]

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        for region in value or ():
            if not (region.isdigit() and len(region) in (2, 4, 6)):
                raise ValueError(f"区划应为 2、4 或 6 位数字 / regions: {region!r} must be a province, city or county "
                                 "code prefix of 2, 4 or 6 digits (37, 3701, 370102)")
        return value


class ApprovalConditions(_Body):
    """An approval's conditions: the fields shared, masks, validity, reads a day."""

    fields: list[str] | None = Field(default=None, min_length=1)
    mask: dict[str, str] = Field(default_factory=dict, validation_alias=AliasChoices("mask", "masks"))
    valid_until: dt.date | None = None
    max_reads_per_day: int | None = Field(default=None, ge=1)


_CONDITIONS = ("fields", "mask", "masks", "valid_until", "max_reads_per_day")


class DecisionBody(_Body):
    """``POST /v1/sharing-requests/{id}/decision``: ``decision`` (or ``action``) ``approve`` with
    ``conditions`` (or the same keys beside it), or ``refuse`` with a ``reason``."""

    decision: str = Field(validation_alias=AliasChoices("decision", "action"))
    reason: str | None = Field(default=None, min_length=1, max_length=1000)
    conditions: ApprovalConditions = Field(default_factory=ApprovalConditions)

    @field_validator("decision")
    @classmethod
    def _decision(cls, value: str) -> str:
        if value not in ("approve", "refuse"):
            raise ValueError(f"决定应为 approve 或 refuse / the decision is approve or refuse, not {value!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _beside(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(k in value for k in _CONDITIONS):
            if "conditions" in value:
                raise ValueError("条件写在 conditions 中或其旁，不能两处都写 / give the conditions inside "
                                 "\"conditions\" or beside it, not both")
            value = {k: v for k, v in value.items() if k not in _CONDITIONS} | {
                "conditions": {k: v for k, v in value.items() if k in _CONDITIONS}}
        return value


class ReasonBody(_Body):
    """An objection to a refusal, a revocation: a reason."""

    reason: str = Field(min_length=1, max_length=1000)


class AnswerBody(ReasonBody):
    """``POST /v1/objections/{id}/answer``: the record upheld, with a reason (``outcome`` or
    ``answer``, if given, says ``upheld``: a correction is a new version naming the objection)."""

    outcome: str | None = Field(default=None, validation_alias=AliasChoices(
        "outcome", "answer", "decision", "status", "result"))

    @field_validator("outcome")
    @classmethod
    def _upheld(cls, value: str | None) -> str | None:
        if value is not None and value != "upheld":
            raise ValueError(f"答复只能维持原记录 / an answer upholds the record ({value!r} is not one): a correction "
                             "is a new version of the record naming the objection in \"corrects\"")
        return value


class ObjectionBody(_Body):
    """``POST /v1/records/{record_id}/objections``: what is wrong with a record received."""

    source: str | None = Field(default=None, pattern=r"^[a-z0-9-]{2,40}$")  # the producer, if the id is not unique
    reason: str = Field(min_length=1, max_length=1000)
    pointers: list[str] = Field(min_length=1, max_length=50, validation_alias=AliasChoices("pointers", "paths"))
    # the value the recipient believes right: a map pointer -> value, or one value for one pointer
    proposed: Any = Field(default=None, validation_alias=AliasChoices("proposed", "proposed_value"))

    @field_validator("pointers")
    @classmethod
    def _pointers(cls, value: list[str]) -> list[str]:
        for pointer in value:
            if not pointer.startswith("/") or any(p == "" for p in pointer[1:].split("/")):
                raise ValueError(f"不是 JSON 指针 / not a JSON pointer into the record: {pointer!r} (e.g. "
                                 "/data/subject/name)")
        return value


def checked(model: type[_Body], body: Mapping[str, Any] | None) -> Any:
    """``body`` as ``model``, or a ``ProcedureStepError`` naming the first thing wrong."""
    if body is None:
        raise ProcedureStepError("请求体应为 JSON 对象 / the body must be a JSON object", malformed=True)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ProcedureStepError(f"{where}: {message}", malformed=True) from exc


def _request_view(item: Mapping[str, Any]) -> dict[str, Any]:
    body = item["body"]
    return {"id": item["id"], "status": item["status"], "requester": item["party"], "provider": item["counterpart"],
            "record_type": item["record_type"], "due_at": item["due_at"], "submitted_at": item["opened_at"],
            "escalated_at": item["escalated_at"], "closed_at": item["closed_at"], "rule": item["rule"],
            **{k: body.get(k) for k in ("purpose", "scenario", "basis", "fields", "regions", "valid_until",
                                        "sharing", "catalogued", "conditions", "reason")},
            "history": item["history"]}


def _objection_view(item: Mapping[str, Any]) -> dict[str, Any]:
    body = item["body"]
    return {"id": item["id"], "status": item["status"], "objector": item["party"], "producer": item["counterpart"],
            "record_type": item["record_type"], "record_id": item["record_id"], "version": body.get("version"),
            "due_at": item["due_at"], "opened_at": item["opened_at"], "escalated_at": item["escalated_at"],
            "closed_at": item["closed_at"], "reason": body.get("reason"), "pointers": body.get("pointers"),
            "proposed": body.get("proposed"), "answer": body.get("answer"), "corrected_by": body.get("corrected_by"),
            "history": item["history"]}


def _duty_view(item: Mapping[str, Any]) -> dict[str, Any]:
    body = item["body"]
    return {"id": item["id"], "status": item["status"], "owed_by": item["party"], "owed_to": item["counterpart"],
            "obligation": body.get("obligation"), "record_type": item["record_type"],
            "record_id": item["record_id"], "route": body.get("route"), "within": body.get("within"),
            "due_at": item["due_at"], "remind_at": item["remind_at"], "opened_at": item["opened_at"],
            "escalated_at": item["escalated_at"], "met_at": item["closed_at"], "met_by": body.get("met_by"),
            "in_time": body.get("in_time"), "history": item["history"]}


VIEWS = {"request": _request_view, "objection": _objection_view, "duty": _duty_view}


class SharingProcedure:
    """Requests and objections: each step checked, kept with its log entry, the policy changed
    where a step grants or revokes."""

    def __init__(self, runner: StoreRunner, in_force: PolicyInForce, *, metrics: Metrics | None = None) -> None:
        self.runner, self.in_force, self.metrics = runner, in_force, metrics

    @property
    def terms(self) -> Terms:
        """The procedure's terms in force."""
        return self.in_force.policy.terms

    def _now(self) -> dt.datetime:
        return self.runner.store.clock()

    def _counted(self, event: str) -> None:
        if self.metrics is not None:
            self.metrics.procedure_steps.labels(event).inc()

    async def _item(self, kind: str, item: str) -> dict[str, Any]:
        found = await self.runner.call(self.runner.store.procedure.get, item)
        if found is None or found["kind"] != kind:
            raise NotFoundError(item)
        return found

    # ---- sharing requests ---------------------------------------------------------------------------

    async def submit(self, requester: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """A consumer's request: checked, its time limit set by the data's sharing class."""
        request: RequestBody = checked(RequestBody, body)
        connectors = self.in_force.connectors
        if request.provider not in connectors:
            raise ProcedureStepError(f"provider: 没有连接器 {request.provider} / no connector {request.provider!r}",
                                     malformed=True)
        if request.provider == requester:
            raise ProcedureStepError("provider: 不能向自己申请 / a connector does not request its own data",
                                     malformed=True)
        paths = data_paths(request.record_type)
        unknown = [f for f in request.fields or () if f not in paths]
        if unknown:
            raise ProcedureStepError(f"fields: {request.record_type} 没有字段 {unknown} / no fields {unknown} under "
                                     f"data of {request.record_type}", malformed=True)
        now = self._now()
        if request.valid_until is not None and request.valid_until < local_today(now):
            raise ProcedureStepError(f"valid_until: {request.valid_until} 已过 / valid_until {request.valid_until} "
                                     "has passed", malformed=True)
        provider = connectors[request.provider]
        sharing = load_schema_set().types[request.record_type].sharing
        catalogued = request.record_type in provider.produces
        item: dict[str, Any] = {
            "id": item_id("request"), "kind": "request", "status": "submitted", "party": requester,
            "counterpart": request.provider, "record_type": request.record_type,
            "body": {**request.model_dump(mode="json", exclude_none=True), "sharing": sharing,
                     "catalogued": catalogued}}
        notice = Notice(request.provider, "sharing_request", item["id"], {
            "requester": requester, "record_type": request.record_type, "purpose": request.purpose})
        if sharing == "none" and not connectors[requester].system_of_record:
            step = Step("request_refused", "gateway", "refused", columns={"closed_at": moment_text(now)},
                        body={"reason": "不予共享类数据：仅报送记录系统 / data not to be shared (sharing class none) "
                                        "goes to systems of record only"},
                        reason="sharing class none: only systems of record receive it",
                        notices=[Notice(requester, "request_refused", item["id"], {"reason": "sharing class none"})])
            first = Step("request_submitted", requester, "submitted", reason=request.purpose)
            opened = await self.runner.call(self.runner.store.procedure.open, item, first)
            refused = await self.runner.call(self.runner.store.procedure.step, opened["id"], step)
            self._counted("request_refused")
            return _request_view(refused or opened)
        limit = self.terms.request_limit(sharing, catalogued)
        due = self.terms.deadline(now, limit)
        step = Step("request_submitted", requester, "submitted", columns={"due_at": moment_text(due)},
                    reason=f"{request.purpose} ({sharing}; answer due within {limit.described})",
                    detail={"limit": str(limit)}, notices=[notice])
        opened = await self.runner.call(self.runner.store.procedure.open, item, step)
        self._counted("request_submitted")
        return _request_view(opened)

    async def request(self, item: str) -> dict[str, Any]:
        """One request with its history (``NotFoundError`` if there is none)."""
        return _request_view(await self._item("request", item))

    def _rule(self, item: Mapping[str, Any], conditions: ApprovalConditions | None) -> dict[str, Any]:
        """The sharing rule a request granted under ``conditions`` makes."""
        body, given = item["body"], conditions or ApprovalConditions()
        requested = body.get("fields")
        if given.fields is not None and requested is not None:
            wider = [f for f in given.fields if f not in requested]
            if wider:
                raise ProcedureStepError(f"conditions.fields: {wider} 未在申请中 / {wider} were not requested: an "
                                         "approval may share fewer fields, not more", malformed=True)
        until = dt.date.fromisoformat(body["valid_until"]) if body.get("valid_until") else None
        if given.valid_until is not None:
            if until is not None and given.valid_until > until:
                raise ProcedureStepError(f"conditions.valid_until: {given.valid_until} 晚于申请的 {until} / later "
                                         f"than the {until} requested", malformed=True)
            until = given.valid_until
        when: dict[str, Any] = {"source": item["counterpart"]}
        if body.get("regions"):
            when["region_prefix"] = body["regions"]
        return _checked_rule({
            "id": f"grant-{item['id']}", "record_types": [item["record_type"]], "consumers": [item["party"]],
            "purpose": body["purpose"], "when": when,
            "fields": given.fields if given.fields is not None else requested, "mask": given.mask,
            "max_reads_per_day": given.max_reads_per_day, "valid_until": until,
            "origin": f"sharing-request:{item['id']}"})

    async def _take(self, item: Mapping[str, Any], step: Step, rule: dict[str, Any] | None) -> dict[str, Any]:
        """Take a step; with a rule, through the policy in force (checked first, then kept with the
        step in one transaction, then routed with)."""
        taken: list[dict[str, Any] | None] = []
        procedure = self.runner.store.procedure

        def keep(store: SQLStore) -> None:
            after = store.procedure.step(item["id"], step, rule=rule)
            if after is None:
                raise ProcedureStepError(f"{item['id']} 已被他人处理 / {item['id']} was moved on by another step "
                                         "meanwhile: read it again")
            taken.append(after)

        if rule is None:
            taken.append(await self.runner.call(procedure.step, item["id"], step))
        else:
            try:
                await self.in_force.change(keep, rule=rule)
            except PolicyDefinitionError as exc:
                raise ProcedureStepError(f"conditions: {exc}", malformed=True) from exc
        if taken[0] is None:
            raise ProcedureStepError(f"{item['id']} 已被他人处理 / {item['id']} was moved on by another step "
                                     "meanwhile: read it again")
        self._counted(step.event)
        return taken[0]

    def _role(self, item: Mapping[str, Any], actor: Actor) -> str:
        if actor.role == "admin":
            return "admin"
        if actor.name == item["counterpart"]:
            return "provider"
        if actor.name == item["party"]:
            return "requester"
        raise NotFoundError(item["id"])  # not theirs: as if it did not exist

    async def decide(self, item_key: str, actor: Actor, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """The provider's (or, on an objection, the coordinating admin's) decision."""
        item = await self._item("request", item_key)
        role = self._role(item, actor)
        decision: DecisionBody = checked(DecisionBody, body)
        action = decision.decision
        status = next_request_status(item["status"], action, role)
        now = moment_text(self._now())
        ruling = item["status"] == "objected"
        if action == "refuse":
            if decision.reason is None:
                raise ProcedureStepError("reason: 拒绝须说明理由 / a refusal must give its reason", malformed=True)
            step = Step("request_refused", actor.logged, status, expect=(item["status"],),
                        columns={"closed_at": now}, body={"reason": decision.reason, "objection_ruled": ruling},
                        reason=decision.reason, detail={"on_objection": ruling},
                        notices=[Notice(item["party"], "request_refused", item["id"], {"reason": decision.reason})])
            return _request_view(await self._take(item, step, None))
        rule = self._rule(item, decision.conditions)
        step = Step("request_approved", actor.logged, status, expect=(item["status"],),
                    columns={"closed_at": now, "rule": rule["id"]},
                    body={"conditions": decision.conditions.model_dump(mode="json", exclude_none=True),
                          "objection_ruled": ruling},
                    reason=decision.reason or ("approved on objection" if ruling else "approved"),
                    detail={"rule": rule["id"]},
                    notices=[Notice(item["party"], "request_approved", item["id"], {"rule": rule["id"]})])
        return _request_view(await self._take(item, step, rule))

    async def object(self, item_key: str, actor: Actor, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """The requester's objection to a refusal, for the coordinating body (an admin) to decide."""
        item = await self._item("request", item_key)
        role = self._role(item, actor)
        reason: ReasonBody = checked(ReasonBody, body)
        status = next_request_status(item["status"], "object", role,
                                     objected_before=bool(item["body"].get("objection_ruled")))
        now = self._now()
        due = self.terms.deadline(now, self.terms.limit("objection_decision"))
        notices = [Notice(item["counterpart"], "request_objected", item["id"], {"reason": reason.reason})]
        if self.terms.limits.coordinator:
            notices.append(Notice(self.terms.limits.coordinator, "request_objected", item["id"],
                                  {"reason": reason.reason, "requester": item["party"]}))
        step = Step("request_objected", actor.logged, status, expect=("refused",),
                    columns={"due_at": moment_text(due), "escalated_at": None, "closed_at": None},
                    body={"objection": reason.reason}, reason=reason.reason, notices=notices)
        return _request_view(await self._take(item, step, None))

    async def revoke(self, item_key: str, actor: Actor, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """Withdraw a grant at once: its rule disabled, nothing more routed, pulled or pushed under it."""
        item = await self._item("request", item_key)
        role = self._role(item, actor)
        reason: ReasonBody = checked(ReasonBody, body)
        status = next_request_status(item["status"], "revoke", role)
        rules = await self.in_force.rules()
        rule = {**rules[item["rule"]], "enabled": False} if item["rule"] in rules else None
        step = Step("request_revoked", actor.logged, status, expect=(item["status"],),
                    columns={"closed_at": moment_text(self._now())}, body={"revoked": reason.reason},
                    reason=reason.reason,
                    notices=[Notice(item["party"], "request_revoked", item["id"], {"reason": reason.reason})])
        return _request_view(await self._take(item, step, rule))

    async def grant(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """An unconditional request whose compliance check passed unrefused: granted as requested."""
        rule = self._rule(item, None)
        step = Step("request_granted", "gateway", "granted", expect=("submitted",),
                    columns={"closed_at": moment_text(self._now()), "rule": rule["id"]}, detail={"rule": rule["id"]},
                    reason="unconditional data: the compliance check passed without a refusal",
                    notices=[Notice(item["party"], "request_granted", item["id"], {"rule": rule["id"]}),
                             Notice(item["counterpart"], "request_granted", item["id"], {"rule": rule["id"]})])
        return await self._take(item, step, rule)

    # ---- objections to records (校核纠错) ----------------------------------------------------------

    async def object_to_record(self, consumer: str, record_id: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """A recipient disputes a record it received: the producer is told and must answer in time."""
        objection: ObjectionBody = checked(ObjectionBody, body)
        store = self.runner.store
        received = await self.runner.call(store.procedure.received, consumer, record_id, objection.source)
        if not received:
            raise NotFoundError(record_id)
        if len(received) > 1:
            raise ProcedureStepError(f"source: 多个来源都有记录 {record_id}（{', '.join(r[0] for r in received)}）/ "
                                     f"several producers have a record {record_id!r}: name its source", malformed=True)
        source, record_type, version, seq, stored = received[0]
        # the record as the consumer receives it (fields left out, masks applied); as stored where its
        # agreement has ended since: it may still dispute what it was given
        sharing = share(self.in_force.policy, stored, consumer, local_today(store.clock()), store.log_hash)
        record = sharing.shared.record if sharing.shared is not None else stored
        missing = [p for p in objection.pointers if not points_to(record, p)]
        if missing:
            raise ProcedureStepError(f"pointers: 记录中没有 {missing} / the record as received has nothing at "
                                     f"{missing}", malformed=True)
        proposed = objection.proposed
        if proposed is not None and not (isinstance(proposed, dict) and proposed and all(
                isinstance(k, str) and k.startswith("/") for k in proposed)):
            if len(objection.pointers) != 1:
                raise ProcedureStepError("proposed: 多个字段时应为 指针→值 的对象 / with several pointers, proposed "
                                         "must map each pointer to its value", malformed=True)
            proposed = {objection.pointers[0]: proposed}
        wrong = [p for p in proposed or {} if p not in objection.pointers]
        if wrong:
            raise ProcedureStepError(f"proposed: {wrong} 不在 pointers 中 / values proposed for {wrong}, which are "
                                     "not among the pointers disputed", malformed=True)
        now = self._now()
        due = self.terms.deadline(now, self.terms.limit("correction_answer"))
        item: dict[str, Any] = {
            "id": item_id("objection"), "kind": "objection", "status": "open", "party": consumer,
            "counterpart": source, "record_type": record_type, "record_id": record_id, "source": source, "seq": seq,
            "body": {**objection.model_dump(mode="json", exclude_none=True), "proposed": proposed,
                     "version": version}}
        step = Step("record_objected", consumer, "open", columns={"due_at": moment_text(due)},
                    reason=f"disputed: {', '.join(objection.pointers)}"[:500],  # the reason itself stays off the log
                    detail={"pointers": objection.pointers},
                    notices=[Notice(source, "record_objected", item["id"], {
                        "record_type": record_type, "record_id": record_id, "version": version,
                        "pointers": objection.pointers, "reason": objection.reason,
                        "proposed": proposed, "due_at": moment_text(due),
                        "answer": f"push a new version with \"corrects\": \"{item['id']}\", or POST "
                                  f"/v1/objections/{item['id']}/answer"})])
        opened = await self.runner.call(self.runner.store.procedure.open, item, step)
        self._counted("record_objected")
        return _objection_view(opened)

    async def objection(self, item_key: str, actor: Actor) -> dict[str, Any]:
        """One objection, to its parties, admins and auditors."""
        item = await self._item("objection", item_key)
        if actor.role == "connector" and actor.name not in (item["party"], item["counterpart"]):
            raise NotFoundError(item_key)
        return _objection_view(item)

    async def answer(self, item_key: str, actor: Actor, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """The producer upholds its record, with a reason (a correction is a new version instead)."""
        item = await self._item("objection", item_key)
        if actor.role == "connector" and actor.name != item["counterpart"]:
            if actor.name == item["party"]:
                raise ProcedureStepError("只有记录的报送方可以答复 / only the record's producer answers an objection")
            raise NotFoundError(item_key)
        reason: AnswerBody = checked(AnswerBody, body)
        if item["status"] not in ("open", "overdue"):
            raise ProcedureStepError(f"异议已{item['status']} / the objection is {item['status']} already")
        step = Step("objection_upheld", actor.logged, "upheld", expect=("open", "overdue"),
                    columns={"closed_at": moment_text(self._now())}, body={"answer": reason.reason},
                    reason="the producer upholds the record",
                    notices=[Notice(item["party"], "objection_upheld", item["id"], {"reason": reason.reason})])
        return _objection_view(await self._take(item, step, None))


def _checked_rule(values: dict[str, Any]) -> dict[str, Any]:
    """The sharing rule a grant makes, checked as a rule (an approval's conditions may be wrong)."""
    try:
        return SharingRule.model_validate(values).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProcedureStepError(f"conditions.{where}: {first['msg']}", malformed=True) from exc


class Deadlines:
    """The one scheduler of the procedure's deadlines."""

    def __init__(self, procedure: SharingProcedure, *, notify: Callable[[str, bytes], Awaitable[None]] | None = None,
                 push_connectors: frozenset[str] = frozenset()) -> None:
        self.procedure, self.metrics, self.runner = procedure, procedure.metrics, procedure.runner
        self.notify, self.push_connectors = notify, push_connectors
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> dict[str, int]:
        """One round at the store's clock: what fell due done, counted by what was done."""
        store = self.runner.store
        now = store.clock()
        done: dict[str, int] = {}
        terms = self.procedure.terms
        for item in await self.runner.call(store.procedure.due, now):
            event = await self._due(item, now, terms)
            if event:
                done[event] = done.get(event, 0) + 1
        if self.notify is not None and self.push_connectors:
            done["notices_pushed"] = await self._push_notices()
        return {k: v for k, v in done.items() if v}

    async def _due(self, item: dict[str, Any], now: dt.datetime, terms: Terms) -> str | None:
        kind, status = item["kind"], item["status"]
        at = moment_text(now)
        passed = item["due_at"] is not None and item["due_at"] <= at and item["escalated_at"] is None
        procedure = self.runner.store.procedure
        if kind == "request" and status == "submitted" and passed and item["body"].get("sharing") == "unconditional":
            try:
                await self.procedure.grant(item)
            except ProcedureStepError:
                return None  # decided meanwhile
            return "request_granted"
        if kind == "duty" and item["remind_at"] is not None and item["remind_at"] <= at and not passed:
            step = Step("duty_reminded", "gateway", expect=("open",), columns={"remind_at": None},
                        reason=f"feedback due at {item['due_at']}",
                        notices=[Notice(item["party"], "duty_reminder", item["id"], {
                            "record_type": item["record_type"], "record_id": item["record_id"],
                            "due_at": item["due_at"], "obligation": item["body"].get("obligation")})])
            return "duty_reminded" if await self.runner.call(procedure.step, item["id"], step) else None
        if not passed:
            return None
        event = {"request": "request_overdue", "objection": "objection_overdue", "duty": "duty_overdue"}[kind]
        after = {"submitted": "overdue", "open": "overdue"}.get(status, status)  # an objected request stays objected
        coordinator = item["body"].get("escalate_to") if kind == "duty" else terms.limits.coordinator
        owing = {"request": item["counterpart"] if status != "objected" else None, "objection": item["counterpart"],
                 "duty": item["party"]}[kind]
        what = {"item_kind": kind, "status": after, "record_type": item["record_type"], "record_id": item["record_id"],
                "due_at": item["due_at"], "owed_by": owing or "coordinator"}
        notices = [Notice(n, "overdue", item["id"], what) for n in dict.fromkeys((owing, coordinator)) if n]
        step = Step(event, "gateway", after, expect=(status,), columns={"escalated_at": at, "remind_at": None},
                    reason=f"not answered by {item['due_at']}; escalated to "
                           f"{coordinator or 'the admins (no coordinator configured)'}", notices=notices)
        if await self.runner.call(procedure.step, item["id"], step) is None:
            return None
        if self.metrics is not None:
            self.metrics.procedure_overdue.labels(kind).inc()
        log.warning("procedure_overdue", item=item["id"], kind=kind, due_at=item["due_at"])
        return event

    async def _push_notices(self) -> int:
        """Push the notices waiting for push connectors (each again next round until taken)."""
        assert self.notify is not None
        store = self.runner.store
        waiting = await self.runner.call(store.procedure.unsent, self.push_connectors)
        by_connector: dict[str, list[dict[str, Any]]] = {}
        for notice in waiting:
            by_connector.setdefault(notice.pop("connector"), []).append(notice)
        pushed = 0
        for connector, notices in by_connector.items():
            try:
                await self.notify(connector, orjson.dumps({"notices": notices}))
            except DeliveryFailedError as exc:
                log.warning("notices_not_pushed", connector=connector, count=len(notices), reason=str(exc))
                continue
            await self.runner.call(store.procedure.sent, [n["id"] for n in notices])
            pushed += len(notices)
        return pushed

    # ---- running ----------------------------------------------------------------------------------

    async def start(self, holder: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                    clock: Callable[[], float] | None = None) -> None:
        """Sweep every ``check_every_seconds`` while this gateway holds the turn."""
        every = self.procedure.terms.limits.check_every_seconds
        ticks = clock or time.time

        async def run() -> None:
            while True:
                try:
                    await self.round(holder, ticks())
                except Exception:
                    log.exception("deadlines_round_failed")
                await sleep(every)

        self._task = asyncio.create_task(run(), name="deadlines")

    async def round(self, holder: str, now: float) -> dict[str, int] | None:
        """One round of ``holder`` at ``now`` (epoch seconds): a sweep if the turn is its (it then
        holds it three rounds longer), ``None`` while another gateway holds it."""
        hold = self.procedure.terms.limits.check_every_seconds * 3
        if not await self.runner.call(self.runner.store.runtime.take_turn, "deadlines", holder, now, hold):
            return None
        return await self.sweep()

    async def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


