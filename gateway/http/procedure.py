"""The sharing procedure's interface: sharing requests and their decisions, objections to records
(校核纠错) and their answers, feedback duties, the notices the gateway gives connectors, and the
producers' timeliness and acceptance (``/v1/quality``).

A connector sees the items it is a party to (those it made and those it must answer); admins and
auditors see all. Every step is logged with its actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from gateway.exceptions import NotFoundError, ParameterError, Refusal
from gateway.flow.procedure import VIEWS, Actor, SharingProcedure
from gateway.http.context import IDENTITY, IN_FORCE, PROCEDURE, STORE, json_response
from gateway.http.docs import LIMIT, errors, json_body, obj, path_param
from gateway.http.params import int_param, json_object, text_param
from gateway.http.routes import Route, route
from gateway.store.procedure import QUALITY_FIGURES, month_span, quality_rows
from policy.exceptions import CalendarUnknownError, ProcedureStepError
from policy.procedure import REQUEST_STEPS

__all__ = ["ROUTES"]

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _answered(handler: Handler) -> Handler:
    """The procedure's refusals as answers: a body that cannot be read 400, a step not allowed now
    409, a calendar that runs out 503 (an item not there is a ``NotFoundError`` already)."""
    @wraps(handler)
    async def answer(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ProcedureStepError as exc:
            raise Refusal(400 if exc.malformed else 409, "invalid" if exc.malformed else "conflict",
                          str(exc)) from exc
        except CalendarUnknownError as exc:
            raise Refusal(503, "calendar_unknown", str(exc)) from exc
    return answer


def _actor(request: web.Request) -> Actor:
    identity = request[IDENTITY]
    return Actor("connector" if identity.role == "connector" else identity.role, identity.name)


def _procedure(request: web.Request) -> SharingProcedure:
    return request.app[PROCEDURE]


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = text_param(request, name)
    if value is not None and value not in allowed:
        raise ParameterError(f"{name} 取值应为 {'、'.join(allowed)} / {name} must be one of "
                             f"{', '.join(allowed)}, not {value!r}")
    return value


async def _listed(request: web.Request, kind: str, statuses: tuple[str, ...], roles: dict[str, str],
                  key: str) -> web.Response:
    """Items of ``kind``: a connector's own (on the side ``role`` names, or either), or all."""
    status = _choice(request, "status", statuses)
    side = _choice(request, "role", tuple(roles))
    limit = int_param(request, "limit", 100, 1, 1000)
    after = text_param(request, "after")
    identity = request[IDENTITY]
    filters: dict[str, Any] = {"status": status, "limit": limit, "after": after}
    if identity.role == "connector":
        if side is None:
            filters["either"] = identity.name
        else:
            filters[roles[side]] = identity.name
    elif side is not None:
        raise ParameterError("role 只用于连接器 / role is for a connector's own items; "
                             "admins and auditors see all")
    store = request.app[STORE]
    try:
        items = await store.call(store.store.procedure.listed, kind, **filters)
    except ValueError as exc:
        raise ParameterError(f"after: 没有 {after} / {exc} (give the `next` of a page)") from exc
    view = VIEWS[kind]
    listed = [{k: v for k, v in view(i).items() if k != "history"} for i in items]
    return json_response({key: listed, "next": listed[-1]["id"] if len(listed) == limit else None})


REQUEST_STATUSES = tuple(REQUEST_STEPS)  # submitted, overdue, refused, objected, approved, granted, revoked
OBJECTION_STATUSES = ("open", "overdue", "corrected", "upheld")
DUTY_STATUSES = ("open", "overdue", "met")


# ---- sharing requests ---------------------------------------------------------------------------


@_answered
async def request_submit(request: web.Request) -> web.Response:
    """POST /v1/sharing-requests: a consumer asks a provider for data."""
    made = await _procedure(request).submit(request[IDENTITY].name, json_object(request))
    return json_response(made, 201)


@_answered
async def request_list(request: web.Request) -> web.Response:
    """GET /v1/sharing-requests[?status=&role=requester|provider]."""
    return await _listed(request, "request", REQUEST_STATUSES, {"requester": "party", "provider": "counterpart"},
                         "requests")


@_answered
async def request_one(request: web.Request) -> web.Response:
    """GET /v1/sharing-requests/{request_id}: one request with its full history."""
    found = await _procedure(request).request(request.match_info["request_id"])
    identity = request[IDENTITY]
    if identity.role == "connector" and identity.name not in (found["requester"], found["provider"]):
        raise NotFoundError(found["id"])
    return json_response(found)


def _step(take: Callable[[SharingProcedure, str, Actor, Any], Awaitable[dict[str, Any]]], key: str,
          doc: str) -> Handler:
    """The handler of a step on an item: the item named in the path, the caller, the body."""
    @_answered
    async def step(request: web.Request) -> web.Response:
        return json_response(await take(_procedure(request), request.match_info[key], _actor(request),
                                        json_object(request)))
    step.__doc__ = doc
    return step


request_decision = _step(SharingProcedure.decide, "request_id", "POST /v1/sharing-requests/{request_id}/decision: "
                         "approve with conditions, or refuse with a reason.")
request_objection = _step(SharingProcedure.object, "request_id", "POST /v1/sharing-requests/{request_id}/objection: "
                          "the requester objects to a refusal.")
request_revoke = _step(SharingProcedure.revoke, "request_id", "POST /v1/sharing-requests/{request_id}/revoke: the "
                       "grant withdrawn at once.")


# ---- objections to records ------------------------------------------------------------------------


@_answered
async def record_objection(request: web.Request) -> web.Response:
    """POST /v1/records/{record_id}/objections: a recipient disputes a record it received."""
    made = await _procedure(request).object_to_record(request[IDENTITY].name, request.match_info["record_id"],
                                                      json_object(request))
    return json_response(made, 201)


@_answered
async def objection_list(request: web.Request) -> web.Response:
    """GET /v1/objections[?status=&role=objector|producer]."""
    return await _listed(request, "objection", OBJECTION_STATUSES, {"objector": "party", "producer": "counterpart"},
                         "objections")


@_answered
async def objection_one(request: web.Request) -> web.Response:
    """GET /v1/objections/{objection_id}."""
    return json_response(await _procedure(request).objection(request.match_info["objection_id"], _actor(request)))


objection_answer = _step(SharingProcedure.answer, "objection_id", "POST /v1/objections/{objection_id}/answer: the "
                         "producer upholds its record, with a reason.")


# ---- duties, notices, quality ---------------------------------------------------------------------


@_answered
async def obligation_list(request: web.Request) -> web.Response:
    """GET /v1/obligations[?status=open|overdue|met&role=owed_by|owed_to]: feedback duties."""
    return await _listed(request, "duty", DUTY_STATUSES, {"owed_by": "party", "owed_to": "counterpart"},
                         "obligations")


async def notices(request: web.Request) -> web.Response:
    """GET /v1/notices[?after=N]: what the gateway told the calling connector, oldest first."""
    after = int_param(request, "after", 0, 0)
    limit = int_param(request, "limit", 100, 1, 1000)
    store = request.app[STORE]
    found = await store.call(store.store.procedure.notices, request[IDENTITY].name, after, limit)
    return json_response({"notices": found, "next": found[-1]["id"] if found else after})


def _month(request: web.Request) -> tuple[str, str, str]:
    try:
        return month_span(text_param(request, "month"), request.app[STORE].store.clock())
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc


async def quality(request: web.Request) -> web.Response:
    """GET /v1/quality[?month=2026-11]: per producing department, records received, accepted,
    rejected, late, corrected, feedback due and late, with 及时率 and 合格率."""
    name, start, end = _month(request)
    store = request.app[STORE]
    figures = await store.call(store.store.procedure.quality, start, end)
    identity = request[IDENTITY]
    if identity.role == "connector":
        figures = {k: v for k, v in figures.items() if k == identity.name}
    departments = {c.id: c.department_code for c in request.app[IN_FORCE].connectors.values()}
    return json_response({"month": name, "from": start, "to": end, "producers": quality_rows(figures, departments)})


async def quality_records(request: web.Request) -> web.Response:
    """GET /v1/quality/records?connector=&figure=[&month=]: the records behind one figure."""
    name, start, end = _month(request)
    figure = _choice(request, "figure", QUALITY_FIGURES)
    connector = text_param(request, "connector")
    identity = request[IDENTITY]
    if identity.role == "connector":
        connector = connector or identity.name
        if connector != identity.name:
            raise Refusal(403, "forbidden", "连接器只能查看自己的数据 / a connector sees its own figures only")
    if figure is None or connector is None:
        raise ParameterError("需要 connector 与 figure / connector and figure are required")
    store = request.app[STORE]
    rows = await store.call(store.store.procedure.quality_records, connector, figure, start, end)
    return json_response({"month": name, "connector": connector, "figure": figure, "records": rows})


# ---- the routes -----------------------------------------------------------------------------------

_CONNECTOR = {"connector"}
_PARTY = {"connector", "admin"}
_ALL = {"connector", "auditor", "admin"}
_TEXT, _TEXTS = {"type": "string"}, {"type": "array", "items": {"type": "string"}}
_MAYBE = {"type": ["string", "null"]}
_STEP = {"type": "object", "properties": {"at": _TEXT, "step": _TEXT, "by": _TEXT, "status": _MAYBE,
                                          "reason": _TEXT}}
_REQUEST = obj(["id", "status", "requester", "provider", "record_type", "due_at"],
               id=_TEXT, status={"type": "string", "enum": list(REQUEST_STATUSES)},
               requester=_TEXT, provider=_TEXT, record_type=_TEXT, due_at=_MAYBE, submitted_at=_TEXT,
               escalated_at=_MAYBE, closed_at=_MAYBE, rule={**_MAYBE, "description": "the sharing rule it granted"},
               purpose=_TEXT, scenario=_TEXT, basis=_TEXT, fields={"type": ["array", "null"], "items": _TEXT},
               regions={"type": ["array", "null"], "items": _TEXT}, valid_until=_TEXT,
               sharing={"type": "string", "enum": ["unconditional", "conditional", "none"]},
               catalogued={"type": "boolean"}, conditions={"type": ["object", "null"]}, reason=_MAYBE,
               history={"type": "array", "items": _STEP})
_OBJECTION = obj(["id", "status", "objector", "producer", "record_id", "due_at"],
                 id=_TEXT, status={"type": "string", "enum": list(OBJECTION_STATUSES)},
                 objector=_TEXT, producer=_TEXT, record_type=_TEXT, record_id=_TEXT,
                 version={"type": ["integer", "null"]}, due_at=_MAYBE, opened_at=_TEXT, escalated_at=_MAYBE,
                 closed_at=_MAYBE, reason=_TEXT, pointers=_TEXTS, proposed={"type": ["object", "null"]},
                 answer=_MAYBE, corrected_by={"type": ["object", "null"]}, history={"type": "array", "items": _STEP})
_DUTY = obj(["id", "status", "owed_by", "owed_to", "record_id", "due_at"],
            id=_TEXT, status={"type": "string", "enum": list(DUTY_STATUSES)}, owed_by=_TEXT, owed_to=_TEXT,
            obligation=_TEXT, record_type=_TEXT, record_id=_TEXT, route=_MAYBE, within=_TEXT, due_at=_TEXT,
            remind_at=_MAYBE, opened_at=_TEXT, escalated_at=_MAYBE, met_at=_MAYBE, met_by=_MAYBE,
            in_time={"type": ["boolean", "null"]})
_REQUEST_BODY = obj(["record_type", "provider", "purpose", "scenario", "basis"],
                    record_type=_TEXT, provider={**_TEXT, "description": "the connector asked for the data"},
                    purpose={**_TEXT, "description": "用途"}, scenario={**_TEXT, "description": "应用场景"},
                    basis={**_TEXT, "description": "依据"}, fields={**_TEXTS, "description": "paths under data"},
                    regions={**_TEXTS, "description": "region-code prefixes (37, 3701, 370102)"},
                    valid_until={"type": "string", "format": "date",
                                 "description": "the last day of the grant (without it: until revoked)"})
_DECISION_BODY = obj(["decision"], decision={"type": "string", "enum": ["approve", "refuse"],
                                             "description": "also read as `action`"},
                     reason={**_TEXT, "description": "required to refuse"},
                     conditions={"type": "object", "properties": {
                         "fields": _TEXTS, "mask": {"type": "object", "additionalProperties": _TEXT},
                         "valid_until": {"type": "string", "format": "date"},
                         "max_reads_per_day": {"type": "integer", "minimum": 1}},
                         "description": "narrow what is shared (these keys may also stand beside `decision`)"})
_REASON_BODY = obj(["reason"], reason=_TEXT)
_ANSWER_BODY = obj(["reason"], reason=_TEXT, outcome={"type": "string", "enum": ["upheld"],
                                                      "description": "also read as `answer`"})
_OBJECTION_BODY = obj(["reason", "pointers"], reason=_TEXT,
                      pointers={**_TEXTS, "description": "JSON pointers into the record (/data/subject/name)"},
                      proposed={"description": "pointer -> the value proposed, or one value for one pointer"},
                      source={**_TEXT, "description": "the producer, where several have a record of that id"})


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(name: str, values: tuple[str, ...] | None = None, description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", **({"enum": list(values)} if values else {})}
    return {"name": name, "in": "query", "required": False, "schema": schema,
            **({"description": description} if description else {})}


_PAGE = _query("after", description="the `next` of the page before")
_MONTH = _query("month", description="YYYY-MM in the province's calendar (default: this month)")
ROUTES: list[Route] = [
    route("POST", "/v1/sharing-requests", request_submit, name="sharing_request_submit", roles=_CONNECTOR, doc={
        "summary": "Request data of a provider, for a stated purpose (logged)", "requestBody": _json(_REQUEST_BODY),
        "responses": {"201": json_body(_REQUEST, "The request, with its status and due_at"),
                      **errors(400, 401, 403, 503)}}),
    route("GET", "/v1/sharing-requests", request_list, name="sharing_requests", roles=_ALL, doc={
        "summary": "Sharing requests: a connector's own, or all for admins and auditors",
        "parameters": [_query("status", REQUEST_STATUSES), _query("role", ("requester", "provider")), LIMIT, _PAGE],
        "responses": {"200": json_body(obj(["requests", "next"], requests={"type": "array", "items": _REQUEST},
                                           next=_MAYBE), "The requests, newest first"), **errors(400, 401, 403)}}),
    route("GET", "/v1/sharing-requests/{request_id}", request_one, name="sharing_request", roles=_ALL, doc={
        "summary": "One sharing request with its full history", "parameters": [path_param("request_id")],
        "responses": {"200": json_body(_REQUEST, "The request"), **errors(401, 403, 404)}}),
    route("POST", "/v1/sharing-requests/{request_id}/decision", request_decision, name="sharing_request_decision",
          roles=_PARTY, doc={
              "summary": "The provider's decision (an admin's, on an objection): approve with conditions, which "
                         "creates the sharing rule, or refuse with a reason (logged)",
              "parameters": [path_param("request_id")], "requestBody": _json(_DECISION_BODY),
              "responses": {"200": json_body(_REQUEST, "The request decided"), **errors(400, 401, 403, 404, 409)}}),
    route("POST", "/v1/sharing-requests/{request_id}/objection", request_objection, name="sharing_request_objection",
          roles=_CONNECTOR, doc={
              "summary": "The requester objects to a refusal; an admin decides (logged)",
              "parameters": [path_param("request_id")], "requestBody": _json(_REASON_BODY),
              "responses": {"200": json_body(_REQUEST, "The request objected"), **errors(400, 401, 403, 404, 409)}}),
    route("POST", "/v1/sharing-requests/{request_id}/revoke", request_revoke, name="sharing_request_revoke",
          roles=_PARTY, doc={
              "summary": "Withdraw a grant at once: its rule disabled (logged)",
              "parameters": [path_param("request_id")], "requestBody": _json(_REASON_BODY),
              "responses": {"200": json_body(_REQUEST, "The request revoked"), **errors(400, 401, 403, 404, 409)}}),
    route("POST", "/v1/records/{record_id}/objections", record_objection, name="record_objection", roles=_CONNECTOR,
          doc={"summary": "Object to a record received (校核纠错); the producer must answer in time (logged)",
               "parameters": [path_param("record_id")], "requestBody": _json(_OBJECTION_BODY),
               "responses": {"201": json_body(_OBJECTION, "The objection"), **errors(400, 401, 403, 404, 503)}}),
    route("GET", "/v1/objections", objection_list, name="objections", roles=_ALL, doc={
        "summary": "Objections to records: a connector's own, or all",
        "parameters": [_query("status", OBJECTION_STATUSES), _query("role", ("objector", "producer")), LIMIT, _PAGE],
        "responses": {"200": json_body(obj(["objections", "next"], objections={"type": "array", "items": _OBJECTION},
                                           next=_MAYBE), "The objections, newest first"), **errors(400, 401, 403)}}),
    route("GET", "/v1/objections/{objection_id}", objection_one, name="objection", roles=_ALL, doc={
        "summary": "One objection with its history", "parameters": [path_param("objection_id")],
        "responses": {"200": json_body(_OBJECTION, "The objection"), **errors(401, 403, 404)}}),
    route("POST", "/v1/objections/{objection_id}/answer", objection_answer, name="objection_answer", roles=_PARTY,
          doc={"summary": "The producer upholds its record with a reason (a correction is a new version naming "
                          "the objection in `corrects`) (logged)",
               "parameters": [path_param("objection_id")], "requestBody": _json(_ANSWER_BODY),
               "responses": {"200": json_body(_OBJECTION, "The objection answered"),
                             **errors(400, 401, 403, 404, 409)}}),
    route("GET", "/v1/obligations", obligation_list, name="obligations", roles=_ALL, doc={
        "summary": "Feedback duties: those a connector owes and those owed to it, or all",
        "parameters": [_query("status", DUTY_STATUSES), _query("role", ("owed_by", "owed_to")), LIMIT, _PAGE],
        "responses": {"200": json_body(obj(["obligations", "next"], obligations={"type": "array", "items": _DUTY},
                                           next=_MAYBE), "The duties, newest first"), **errors(400, 401, 403)}}),
    route("GET", "/v1/notices", notices, name="notices", roles=_CONNECTOR, doc={
        "summary": "What the gateway told the caller: requests to answer, objections, reminders, escalations",
        "parameters": [{"name": "after", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 0}, "description": "the `next` of the page before"},
                       LIMIT],
        "responses": {"200": json_body(obj(["notices", "next"], notices={"type": "array", "items": {
            "type": "object"}}, next={"type": "integer"}), "Notices, oldest first"), **errors(400, 401, 403)}}),
    route("GET", "/v1/quality", quality, name="quality", roles=_ALL, doc={
        "summary": "Producers' timeliness and acceptance (及时率, 合格率) for a month",
        "parameters": [_MONTH],
        "responses": {"200": json_body(obj(["month", "producers"], month=_TEXT, producers={"type": "array", "items": {
            "type": "object"}}), "Per producing connector and department"), **errors(400, 401, 403)}}),
    route("GET", "/v1/quality/records", quality_records, name="quality_records", roles=_ALL, doc={
        "summary": "The records behind one figure of the quality report (metadata only)",
        "parameters": [_MONTH, _query("connector"), _query("figure", QUALITY_FIGURES)],
        "responses": {"200": json_body(obj(["records"], records={"type": "array", "items": {"type": "object"}}),
                                       "The records"), **errors(400, 401, 403)}}),
]
