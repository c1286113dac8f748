"""The consumer's side of the interface: the inbox of records shared with it, and its
acknowledgements. Each record is shared as the policy in force shows it (``gateway.flow.sharing``)."""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.exceptions import Refusal
from gateway.http.context import BODY, METRICS, SHARER, STORE, json_response
from gateway.http.docs import CURSOR, LIMIT, errors, json_body, obj, ref
from gateway.http.params import cursor_param, int_param
from gateway.http.records import connector_of
from gateway.http.routes import Route, route

__all__ = ["ROUTES"]


async def inbox(request: web.Request) -> web.Response:
    """GET /v1/inbox: records shared with the caller after the cursor, oldest first, as its policy
    shows them; with them, the sharing procedure's notices not yet handed over (also at /v1/notices)."""
    connector = connector_of(request).name
    after = cursor_param(request, "after")
    limit = int_param(request, "limit", 100, 1, 1000)
    page = await request.app[SHARER].inbox(connector, after, limit)  # ReadLimitError past the agreement's reads
    if page.overdue:
        request.app[METRICS].overdue.labels(connector).inc(page.overdue)
    answer: dict[str, object] = {"records": [r.record for r in page.records], "next": str(page.next),
                                 "receipts": [{"record_id": r.record_id, "version": r.version, "seq": r.log_seq}
                                              for r in page.records]}
    store = request.app[STORE]
    notices = await store.call(store.store.procedure.hand_over, connector)  # the procedure's, once each
    if notices:
        answer["notices"] = notices
    return json_response(answer)


async def ack(request: web.Request) -> web.Response:
    """POST /v1/inbox/ack: everything up to the cursor is consumed."""
    connector = connector_of(request)
    try:
        given = orjson.loads(request[BODY])["cursor"]
        if isinstance(given, str) and given.isascii() and given.isdigit() and len(given) <= 19:
            given = int(given)
        if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= 2**62:
            raise ValueError(given)
        cursor = given
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise Refusal(400, "malformed", '请求体应为 {"cursor": C} / the body must be {"cursor": C}, C a cursor') \
            from exc
    store = request.app[STORE]
    acked = await store.call(store.store.inbox.ack, connector.name, cursor)
    return json_response({"acked": str(acked)})


ROUTES: list[Route] = [
    route("GET", "/v1/inbox", inbox, name="inbox", roles={"connector"}, doc={
        "summary": "Records shared with the caller, oldest first", "parameters": [CURSOR, LIMIT],
        "responses": {"200": json_body(ref("InboxPage"), "A page and the cursor after it"),
                      **errors(400, 401, 403, 429, 503)}}),
    route("POST", "/v1/inbox/ack", ack, name="ack", roles={"connector"}, doc={
        "summary": "Acknowledge everything up to a cursor",
        "requestBody": {"required": True, "content": {"application/json": {"schema": obj(
            ["cursor"], cursor={"type": ["string", "integer"]})}}},
        "responses": {"200": json_body(obj(["acked"], acked={"type": "string"}), "The acknowledged cursor"),
                      **errors(400, 401, 403, 503)}}),
]
