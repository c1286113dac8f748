"""The admin API (``/v1/admin/…``): connectors and sharing rules at run time, the policy
explained, dead letters listed and replayed. Admins manage; they never read payloads, so an
explanation shows the shared record only as the consumer would receive it.

Rules added or changed here are kept in the store (they survive a restart and replace a rule of the
same id from the configuration file) and every change is a ``config_changed`` log entry.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.exceptions import Refusal
from gateway.http.context import BODY, CONFIG, DELIVERER, IDENTITY, IN_FORCE, SOURCES, STORE, json_response
from gateway.http.docs import errors, json_body, obj, path_param, ref
from gateway.http.params import json_object
from gateway.http.routes import Route, route
from policy import PolicyDefinitionError, SharingRule, local_today

__all__ = ["ROUTES", "explain_record"]

_NOT_A_RULE = "请求体应为共享规则 JSON 对象 / the body must be a sharing rule as a JSON object"


async def connectors(request: web.Request) -> web.Response:
    """GET /v1/admin/connectors: the registered connectors as in force (no secrets), with what each
    polled system or watched folder last did."""
    fields = {"id", "name", "kind", "department_code", "region_code", "produces", "consumes", "delivery", "endpoint",
              "mapping", "system_of_record", "enabled"}
    sources = request.app[SOURCES].status()
    listed = []
    for connector in request.app[IN_FORCE].connectors.values():
        entry = connector.model_dump(include=fields)
        if connector.id in sources:
            entry["source"] = sources[connector.id].as_dict()
        listed.append(entry)
    return json_response({"connectors": listed})


async def connector_disable(request: web.Request) -> web.Response:
    """POST /v1/admin/connectors/{id}/disable: cut a connector off at once (its requests are refused,
    nothing is routed or pushed to it); kept across restarts and logged."""
    return await _switch(request, enabled=False)


async def connector_enable(request: web.Request) -> web.Response:
    """POST /v1/admin/connectors/{id}/enable: let a disabled connector back in."""
    return await _switch(request, enabled=True)


async def _switch(request: web.Request, *, enabled: bool) -> web.Response:
    connector_id = request.match_info["connector_id"]
    if connector_id not in request.app[CONFIG].connectors():
        raise Refusal(404, "not_found", f"没有连接器 {connector_id} / no connector {connector_id!r}")
    by = request[IDENTITY].name
    await request.app[IN_FORCE].change(lambda store: store.runtime.save_connector_state(connector_id, enabled, by),
                                       state=(connector_id, enabled))
    return json_response({"connector": connector_id, "enabled": enabled})


async def rules(request: web.Request) -> web.Response:
    """GET /v1/admin/sharing: the sharing rules in force."""
    current = await request.app[IN_FORCE].rules()
    return json_response({"rules": list(current.values())})


def _rule_of(request: web.Request, given: dict[str, Any] | None = None) -> SharingRule:
    """The sharing rule the body holds (with ``given`` fields over it), checked as a rule; a
    ``Refusal`` naming the first thing wrong otherwise."""
    body = json_object(request)
    if body is None:
        raise Refusal(400, "malformed", _NOT_A_RULE)
    try:
        return SharingRule.model_validate({**body, **(given or {})})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refusal(400, "invalid_rule", f"共享规则无效 / invalid sharing rule: {where}: {first['msg']}") from exc


async def _existing(request: web.Request, rule_id: str) -> dict[str, Any]:
    """The rule in force of that id (404 if there is none)."""
    existing = await request.app[IN_FORCE].rules()
    if rule_id not in existing:
        raise Refusal(404, "not_found", f"没有规则 {rule_id} / no rule {rule_id!r}")
    return existing[rule_id]


async def _change(request: web.Request, rule: SharingRule, change: str) -> web.Response:
    """Keep a rule added, replaced or disabled, once it is checked against the connectors and schemas."""
    checked = rule.model_dump(mode="json")
    by = request[IDENTITY].name
    try:
        await request.app[IN_FORCE].change(lambda store: store.runtime.save_rule(checked, by, change), rule=checked)
    except PolicyDefinitionError as exc:
        raise Refusal(400, "invalid_rule", str(exc)) from exc
    return json_response({"rule": checked, "change": change}, 201 if change == "added" else 200)


async def rule_add(request: web.Request) -> web.Response:
    """POST /v1/admin/sharing: add a rule."""
    rule = _rule_of(request)
    if rule.id in await request.app[IN_FORCE].rules():
        raise Refusal(409, "conflict", f"规则 {rule.id} 已存在 / rule {rule.id!r} exists: update it with "
                      "PUT /v1/admin/sharing/{id}")
    return await _change(request, rule, "added")


async def rule_update(request: web.Request) -> web.Response:
    """PUT /v1/admin/sharing/{rule_id}: replace a rule."""
    rule_id = request.match_info["rule_id"]
    rule = _rule_of(request, {"id": rule_id})
    await _existing(request, rule_id)
    return await _change(request, rule, "updated")


async def rule_disable(request: web.Request) -> web.Response:
    """POST /v1/admin/sharing/{rule_id}/disable: stop sharing under a rule (kept for the record)."""
    existing = await _existing(request, request.match_info["rule_id"])
    return await _change(request, SharingRule.model_validate({**existing, "enabled": False}), "disabled")


def explain_record(app: web.Application, record: dict[str, Any], consumer: str) -> dict[str, Any]:
    """The explanation of the policy in force, with the store's catalogue and producers (runs on
    the store thread)."""
    store = app[STORE].store
    today = local_today(dt.datetime.fromisoformat(store.now()))
    return app[IN_FORCE].policy.explain(record, consumer, today, catalogue=store.routing.matter_departments,
                                        producer=store.routing.producer)


async def explain(request: web.Request) -> web.Response:
    """POST /v1/admin/policy/explain ``{"record": {…}, "to": "consumer"}``."""
    body = json_object(request)
    if body is None or not isinstance(body.get("record"), dict) or not isinstance(body.get("to"), str):
        raise Refusal(400, "malformed", '请求体应为 {"record": {…}, "to": "连接器"} / the body must be {"record": {…}, '
                      '"to": "connector id"}')
    runner = request.app[STORE]
    result = await runner.call(explain_record, request.app, body["record"], body["to"])
    return json_response(result)


async def deadletters(request: web.Request) -> web.Response:
    """GET /v1/admin/deadletters[?consumer=ID]: deliveries given up on."""
    runner = request.app[STORE]
    rows = await runner.call(runner.store.outbox.dead_letters, request.query.get("consumer"))
    return json_response({"dead_letters": rows})


async def replay(request: web.Request) -> web.Response:
    """POST /v1/admin/deadletters/replay ``{"consumer"?: ID, "seqs"?: [N]}``: send them again."""
    body = json_object(request) if request[BODY] else {}
    if body is None:
        raise Refusal(400, "malformed", '请求体应为 {"consumer": …, "seqs": […]} / the body must be {"consumer": …, '
                      '"seqs": […]}, both optional')
    consumer, seqs = body.get("consumer"), body.get("seqs")
    if (consumer is not None and not isinstance(consumer, str)) or \
            (seqs is not None and not (isinstance(seqs, list) and all(isinstance(s, int) for s in seqs))):
        raise Refusal(400, "malformed", "consumer 应为字符串，seqs 应为整数数组 / consumer must be a string and seqs a "
                      "list of integers")
    runner = request.app[STORE]
    count = await runner.call(runner.store.outbox.replay, consumer, seqs, request[IDENTITY].name)
    if DELIVERER in request.app:
        request.app[DELIVERER].wake()
    return json_response({"replayed": count})


def _changed() -> dict[str, Any]:
    return json_body(obj(["rule", "change"], rule=ref("SharingRule"), change={"type": "string"}), "The rule as kept")


_ADMIN = {"admin"}
_TEXTS = {"type": "array", "items": {"type": "string"}}
_MAYBE = {"type": ["string", "null"]}
_EXPLANATION = obj(
    ["consumer", "record_type", "record_id", "routed", "route", "allowed", "reason"],
    consumer={"type": "string"}, record_type=_MAYBE, record_id=_MAYBE,
    routed={"type": "boolean", "description": "whether routing reaches the consumer at all"},
    route={**_MAYBE, "description": "why it is routed (subscription, jurisdiction, catalogue, reply, …)"},
    allowed={"type": "boolean", "description": "whether a rule lets the consumer have it now"},
    reason={"type": "string", "description": "why, or why not"},
    rule=_MAYBE, purpose=_MAYBE, deliver_within_seconds={"type": ["integer", "null"]},
    considered={"type": "array", "items": obj(["rule", "outcome"], rule={"type": "string"},
                                               outcome={"type": "string"})},
    shared={"type": "object", "description": "the record as the consumer would receive it"},
    fields=_TEXTS, masked=_TEXTS, omitted=_TEXTS)
_RULE_BODY = {"required": True, "content": {"application/json": {"schema": ref("SharingRule")}}}
_LISTED = {"type": "array", "items": {"type": "object"}}
ROUTES: list[Route] = [
    route("GET", "/v1/admin/connectors", connectors, name="admin_connectors", roles=_ADMIN, doc={
        "summary": "The registered connectors (no secrets)",
        "responses": {"200": json_body(obj(["connectors"], connectors=_LISTED), "The connectors"),
                      **errors(401, 403)}}),
    *(route("POST", f"/v1/admin/connectors/{{connector_id}}/{action}", handler, name=f"admin_connector_{action}",
            roles=_ADMIN, doc={
                "summary": f"{action.capitalize()} a connector at run time (logged)",
                "parameters": [path_param("connector_id")],
                "responses": {"200": json_body(obj(["connector", "enabled"], connector={"type": "string"},
                                                   enabled={"type": "boolean"}), "The connector's state"),
                              **errors(401, 403, 404)}})
      for action, handler in (("disable", connector_disable), ("enable", connector_enable))),
    route("GET", "/v1/admin/sharing", rules, name="admin_rules", roles=_ADMIN, doc={
        "summary": "The sharing rules in force",
        "responses": {"200": json_body(obj(["rules"], rules={"type": "array", "items": ref("SharingRule")}),
                                       "The rules"), **errors(401, 403)}}),
    route("POST", "/v1/admin/sharing", rule_add, name="admin_rule_add", roles=_ADMIN, doc={
        "summary": "Add a sharing rule (logged)", "requestBody": _RULE_BODY,
        "responses": {"201": _changed(), **errors(400, 401, 403, 409)}}),
    route("PUT", "/v1/admin/sharing/{rule_id}", rule_update, name="admin_rule_update", roles=_ADMIN, doc={
        "summary": "Replace a sharing rule (logged)", "parameters": [path_param("rule_id")],
        "requestBody": _RULE_BODY, "responses": {"200": _changed(), **errors(400, 401, 403, 404)}}),
    route("POST", "/v1/admin/sharing/{rule_id}/disable", rule_disable, name="admin_rule_disable", roles=_ADMIN, doc={
        "summary": "Disable a sharing rule (logged)", "parameters": [path_param("rule_id")],
        "responses": {"200": _changed(), **errors(401, 403, 404)}}),
    route("POST", "/v1/admin/policy/explain", explain, name="admin_explain", roles=_ADMIN, doc={
        "summary": "Whether and why a record reaches a consumer, and what it would receive",
        "requestBody": {"required": True, "content": {"application/json": {"schema": obj(
            ["record", "to"], record={"type": "object"}, to={"type": "string"})}}},
        "responses": {"200": json_body(_EXPLANATION, "The explanation"), **errors(400, 401, 403)}}),
    route("GET", "/v1/admin/deadletters", deadletters, name="admin_deadletters", roles=_ADMIN, doc={
        "summary": "Deliveries given up on",
        "parameters": [{"name": "consumer", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"200": json_body(obj(["dead_letters"], dead_letters=_LISTED), "Dead letters"),
                      **errors(401, 403)}}),
    route("POST", "/v1/admin/deadletters/replay", replay, name="admin_replay", roles=_ADMIN, doc={
        "summary": "Send dead letters again (logged)",
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"consumer": {"type": "string"},
                                             "seqs": {"type": "array", "items": {"type": "integer"}}}}}}},
        "responses": {"200": json_body(obj(["replayed"], replayed={"type": "integer"}), "How many"),
                      **errors(400, 401, 403)}}),
]
