"""The admin API (SPEC §3.2 ``/v1/admin/…``): connectors and sharing rules at run time, the policy
explained, dead letters listed and replayed. Admins manage; they never read payloads, so an
explanation shows the shared record only as the consumer would receive it.

Rules added or changed here are kept in the store (they survive a restart and replace a rule of the
same id from the configuration file) and every change is a ``config_changed`` log entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from gateway.access import Routes
from gateway.keys import BODY, CONFIG, DELIVERER, IDENTITY, SOURCES, STORE, connectors_in_force, error, json_response
from gateway.store import SQLStore
from policy import PolicyDefinitionError, SharingRule, local_today

__all__ = ["add_admin_routes", "explain_record"]

_NOT_A_RULE = "请求体应为共享规则 JSON 对象 / the body must be a sharing rule as a JSON object"


async def connectors(request: web.Request) -> web.Response:
    """GET /v1/admin/connectors: the registered connectors as in force (no secrets), with what each
    polled system or watched folder last did."""
    fields = {"id", "name", "kind", "department_code", "region_code", "produces", "consumes", "delivery", "endpoint",
              "mapping", "system_of_record", "enabled"}
    sources = request.app[SOURCES].status()
    listed = []
    for connector in connectors_in_force(request.app).values():
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
        return error(404, "not_found", f"没有连接器 {connector_id} / no connector {connector_id!r}")
    by = request[IDENTITY].name
    await _reconfigure(request, lambda store: store.save_connector_state(connector_id, enabled, by),
                       state=(connector_id, enabled))
    return json_response({"connector": connector_id, "enabled": enabled})


def _rules_in_force(app: web.Application) -> dict[str, dict[str, Any]]:
    """The rules in force: the configuration's, replaced by those changed at run time (store thread)."""
    rules = {r.id: r.model_dump(mode="json") for r in app[CONFIG].sharing}
    rules.update(app[STORE].store.runtime_rules())
    return rules


async def _reconfigure(request: web.Request, keep: Callable[[SQLStore], None], *,
                       rule: dict[str, Any] | None = None, state: tuple[str, bool] | None = None) -> None:
    """On the store thread: the rules and connector states in force with one change, checked against
    the connectors and schemas (``PolicyDefinitionError``), kept by ``keep``, and routed with from now on."""
    app = request.app
    runner = app[STORE]

    def apply() -> None:
        store = runner.store
        rules, states = _rules_in_force(app), store.connector_states()
        if rule is not None:
            rules[rule["id"]] = rule
        if state is not None:
            states[state[0]] = state[1]
        policy = app[CONFIG].policy(rules, states)
        keep(store)
        store.set_policy(policy)

    await runner.call(apply)
    if DELIVERER in app:
        app[DELIVERER].wake()


async def rules(request: web.Request) -> web.Response:
    """GET /v1/admin/sharing: the sharing rules in force."""
    runner = request.app[STORE]
    current = await runner.call(_rules_in_force, request.app)
    return json_response({"rules": list(current.values())})


def _invalid(exc: ValidationError) -> web.Response:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return error(400, "invalid_rule", f"共享规则无效 / invalid sharing rule: {where}: {first['msg']}")


async def _change(request: web.Request, rule: SharingRule, change: str) -> web.Response:
    """Keep a rule added, replaced or disabled, once it is checked against the connectors and schemas."""
    checked = rule.model_dump(mode="json")
    by = request[IDENTITY].name
    try:
        await _reconfigure(request, lambda store: store.save_rule(checked, by, change), rule=checked)
    except PolicyDefinitionError as exc:
        return error(400, "invalid_rule", str(exc))
    return json_response({"rule": checked, "change": change}, 201 if change == "added" else 200)


def _json_object(request: web.Request) -> dict[str, Any] | None:
    try:
        value = orjson.loads(request[BODY] or b"null")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def rule_add(request: web.Request) -> web.Response:
    """POST /v1/admin/sharing: add a rule."""
    body = _json_object(request)
    if body is None:
        return error(400, "malformed", _NOT_A_RULE)
    try:
        rule = SharingRule.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)
    existing = await request.app[STORE].call(_rules_in_force, request.app)
    if rule.id in existing:
        return error(409, "conflict", f"规则 {rule.id} 已存在 / rule {rule.id!r} exists: update it with "
                     "PUT /v1/admin/sharing/{id}")
    return await _change(request, rule, "added")


async def rule_update(request: web.Request) -> web.Response:
    """PUT /v1/admin/sharing/{rule_id}: replace a rule."""
    rule_id = request.match_info["rule_id"]
    body = _json_object(request)
    if body is None:
        return error(400, "malformed", _NOT_A_RULE)
    try:
        rule = SharingRule.model_validate({**body, "id": rule_id})
    except ValidationError as exc:
        return _invalid(exc)
    existing = await request.app[STORE].call(_rules_in_force, request.app)
    if rule_id not in existing:
        return error(404, "not_found", f"没有规则 {rule_id} / no rule {rule_id!r}")
    return await _change(request, rule, "updated")


async def rule_disable(request: web.Request) -> web.Response:
    """POST /v1/admin/sharing/{rule_id}/disable: stop sharing under a rule (kept for the record)."""
    rule_id = request.match_info["rule_id"]
    existing = await request.app[STORE].call(_rules_in_force, request.app)
    if rule_id not in existing:
        return error(404, "not_found", f"没有规则 {rule_id} / no rule {rule_id!r}")
    return await _change(request, SharingRule.model_validate({**existing[rule_id], "enabled": False}), "disabled")


def explain_record(app: web.Application, record: dict[str, Any], consumer: str) -> dict[str, Any]:
    """The policy's explanation, with the store's catalogue and producers (runs on the store thread)."""
    store = app[STORE].store
    policy = store.policy
    assert policy is not None
    today = local_today(dt.datetime.fromisoformat(store.now()))
    return policy.explain(record, consumer, today, catalogue=store.matter_departments, producer=store.producer)


async def explain(request: web.Request) -> web.Response:
    """POST /v1/admin/policy/explain ``{"record": {…}, "to": "consumer"}``."""
    body = _json_object(request)
    if body is None or not isinstance(body.get("record"), dict) or not isinstance(body.get("to"), str):
        return error(400, "malformed", '请求体应为 {"record": {…}, "to": "连接器"} / the body must be {"record": {…}, '
                     '"to": "connector id"}')
    runner = request.app[STORE]
    result = await runner.call(explain_record, request.app, body["record"], body["to"])
    return json_response(result)


async def deadletters(request: web.Request) -> web.Response:
    """GET /v1/admin/deadletters[?consumer=ID]: deliveries given up on."""
    runner = request.app[STORE]
    rows = await runner.call(runner.store.dead_letters, request.query.get("consumer"))
    return json_response({"dead_letters": rows})


async def replay(request: web.Request) -> web.Response:
    """POST /v1/admin/deadletters/replay ``{"consumer"?: ID, "seqs"?: [N]}``: send them again."""
    body = _json_object(request) if request[BODY] else {}
    if body is None:
        return error(400, "malformed", '请求体应为 {"consumer": …, "seqs": […]} / the body must be {"consumer": …, '
                     '"seqs": […]}, both optional')
    consumer, seqs = body.get("consumer"), body.get("seqs")
    if (consumer is not None and not isinstance(consumer, str)) or \
            (seqs is not None and not (isinstance(seqs, list) and all(isinstance(s, int) for s in seqs))):
        return error(400, "malformed", "consumer 应为字符串，seqs 应为整数数组 / consumer must be a string and seqs a "
                     "list of integers")
    runner = request.app[STORE]
    count = await runner.call(runner.store.replay, consumer, seqs, request[IDENTITY].name)
    if DELIVERER in request.app:
        request.app[DELIVERER].wake()
    return json_response({"replayed": count})


def add_admin_routes(routes: Routes) -> None:
    """The admin endpoints, for the admin role only."""
    admin = {"admin"}
    routes.add("GET", "/v1/admin/connectors", connectors, name="admin_connectors", roles=admin)
    routes.add("POST", "/v1/admin/connectors/{connector_id}/disable", connector_disable,
               name="admin_connector_disable", roles=admin)
    routes.add("POST", "/v1/admin/connectors/{connector_id}/enable", connector_enable, name="admin_connector_enable",
               roles=admin)
    routes.add("GET", "/v1/admin/sharing", rules, name="admin_rules", roles=admin)
    routes.add("POST", "/v1/admin/sharing", rule_add, name="admin_rule_add", roles=admin)
    routes.add("PUT", "/v1/admin/sharing/{rule_id}", rule_update, name="admin_rule_update", roles=admin)
    routes.add("POST", "/v1/admin/sharing/{rule_id}/disable", rule_disable, name="admin_rule_disable", roles=admin)
    routes.add("POST", "/v1/admin/policy/explain", explain, name="admin_explain", roles=admin)
    routes.add("GET", "/v1/admin/deadletters", deadletters, name="admin_deadletters", roles=admin)
    routes.add("POST", "/v1/admin/deadletters/replay", replay, name="admin_replay", roles=admin)
