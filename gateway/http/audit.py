"""The auditor's side of the interface: the exchange log queried, verified and exported. Every
query is itself logged (``audit_query``), from the API and the console alike."""

from __future__ import annotations

import asyncio

import orjson
import structlog
from aiohttp import web

from gateway.exceptions import LogIntegrityError
from gateway.exchange_log import LogEntry, audit_query
from gateway.flow.checkpoints import held_to_tree
from gateway.http.context import IDENTITY, STORE, json_response
from gateway.http.docs import CURSOR, LIMIT, LOG_FILTERS, errors, json_body, obj, ref
from gateway.http.params import int_param, log_filter
from gateway.http.records import entry_dict
from gateway.http.routes import Route, route

__all__ = ["ROUTES", "audited"]

log = structlog.get_logger("supex.audit")


async def audited(request: web.Request, what: str, by: str | None = None) -> None:
    """Log that the caller (or ``by``) asked ``what``, with the request's query."""
    store = request.app[STORE]
    entry = audit_query(store.store.now(), by or request[IDENTITY].name, f"{what} {request.query_string}")
    await store.call(store.store.log.append, [entry])


async def events(request: web.Request) -> web.Response:
    """GET /v1/audit/events: exchange-log entries by filter, paged by seq."""
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", 100, 1, 1000)
    where = await log_filter(request)
    await audited(request, "events")
    store = request.app[STORE]
    entries = await store.call(lambda: list(store.store.log.entries(after=after, where=where, limit=limit)))
    return json_response({"events": [entry_dict(e) for e in entries],
                          "next": str(entries[-1].seq if entries else after)})


async def verify(request: web.Request) -> web.Response:
    """GET /v1/audit/verify: every entry the store holds checked, and the tree they make held to the
    signed checkpoints (``archived``: entries before them were archived and pruned)."""
    runner = request.app[STORE]
    store = runner.store
    # beside the store thread, on connections of its own: writes go on while the log is checked
    outcome = await asyncio.get_running_loop().run_in_executor(None, lambda: list(store.log.verify())[-1])
    outcome = await runner.call(held_to_tree, store, outcome, None)
    await audited(request, "verify")
    return json_response({"ok": outcome.ok, "entries": outcome.entries, "archived": outcome.archived,
                          "first_bad_seq": outcome.first_bad_seq, "reason": outcome.reason})


async def export(request: web.Request) -> web.StreamResponse:
    """GET /v1/audit/export: the log entries as an NDJSON stream."""
    after = int_param(request, "after", 0)  # every parameter is checked before the stream starts
    where = await log_filter(request)
    await audited(request, "export")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    store = request.app[STORE]

    def read(after: int) -> tuple[list[LogEntry], LogIntegrityError | None]:
        chunk: list[LogEntry] = []
        try:
            chunk.extend(store.store.log.entries(after=after, where=where, limit=2000))
        except LogIntegrityError as exc:  # an entry changed in the store: those before it are given
            return chunk, exc
        return chunk, None

    while True:
        chunk, unreadable = await store.call(read, after)
        await response.write(b"".join(orjson.dumps(entry_dict(e)) + b"\n" for e in chunk))
        if unreadable is not None:  # the answer has begun: its last line says where and why it stops
            log.error("log_integrity", reason=str(unreadable), path=request.path)
            await response.write(orjson.dumps({"error": {"code": "log_integrity", "message": str(unreadable)}}) + b"\n")
            break
        if not chunk:
            break
        after = chunk[-1].seq
    await response.write_eof()
    return response


ROUTES: list[Route] = [
    route("GET", "/v1/audit/events", events, name="audit_events", roles={"auditor"}, doc={
        "summary": "Exchange-log entries by filter", "parameters": [CURSOR, LIMIT, *LOG_FILTERS],
        "responses": {"200": json_body(obj(["events", "next"], events={"type": "array", "items": ref("LogEntry")},
                                           next={"type": "string"}), "Entries, oldest first"),
                      **errors(400, 401, 403)}}),
    route("GET", "/v1/audit/verify", verify, name="audit_verify", roles={"auditor"}, doc={
        "summary": "Verify the exchange log's hash chain",
        "responses": {"200": json_body(obj(["ok", "entries", "first_bad_seq"], ok={"type": "boolean"},
                                           entries={"type": "integer"},
                                           first_bad_seq={"type": ["integer", "null"]},
                                           reason={"type": ["string", "null"]}), "The verdict"),
                      **errors(401, 403)}}),
    route("GET", "/v1/audit/export", export, name="audit_export", roles={"auditor"}, doc={
        "summary": "The exchange log as NDJSON", "parameters": [CURSOR, *LOG_FILTERS],
        "responses": {"200": {"description": "One entry a line",
                              "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                      **errors(400, 401, 403)}}),
]
