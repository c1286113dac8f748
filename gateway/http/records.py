"""The producer's side of the interface: pushing records, reading back its own rejections and one
record's trail, and the standard interface's schemas."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.exceptions import Refusal
from gateway.exchange_log import LogEntry
from gateway.flow.prepare import INLINE_BELOW
from gateway.http.context import (
    BODY,
    DELIVERER,
    IDENTITY,
    IN_FORCE,
    MAPPINGS,
    METRICS,
    NONCE,
    PREPARE_POOL,
    PREPARER,
    STORE,
    json_response,
)
from gateway.http.docs import CURSOR, LIMIT, PUSH_BODY, errors, json_body, obj, path_param, ref
from gateway.http.params import int_param
from gateway.http.routes import Route, route
from gateway.http.security import Identity
from gateway.observability import new_id
from gateway.store.model import tally
from schemas import load_schema_set

__all__ = ["ROUTES", "connector_of", "entry_dict"]


def connector_of(request: web.Request) -> Identity:
    """The signed connector calling."""
    identity = request[IDENTITY]
    assert identity.connector is not None
    return identity


def entry_dict(entry: LogEntry) -> dict[str, Any]:
    """A log entry as the API shows it: its fields that have a value, with its hashes."""
    data = entry.content()
    data.update(prev_hash=entry.prev_hash, hash=entry.hash)
    return {k: v for k, v in data.items() if v not in (None, [], "")}


async def push(request: web.Request) -> web.Response:
    """POST /v1/records: validate and store a batch; 200 only after everything accepted is durable."""
    connector = connector_of(request).connector
    assert connector is not None
    app = request.app
    store = app[STORE]
    batch_id = new_id()
    body, content_type, received_at = request[BODY], request.headers.get("Content-Type", ""), store.store.now()
    pool = app.get(PREPARE_POOL)
    if pool is None or len(body) < INLINE_BELOW:
        prepared = app[PREPARER].prepare(connector, app[MAPPINGS].get(connector.id), body, content_type, received_at)
    else:
        prepared = await pool.prepare(connector.id, body, content_type, received_at)
    started = time.perf_counter()
    # committed on the store thread together with whatever else is waiting (group commit): the
    # loop goes on serving while the disk syncs, and concurrent pushes share one fsync; a nonce
    # recorded by another gateway meanwhile, or before a restart, is a replay (ReplayError)
    outcomes = await store.ingest(connector.id, batch_id, prepared.incoming, prepared.rejected,
                                  nonce=request[NONCE], policy=app[IN_FORCE].policy)
    app[METRICS].commit.observe(time.perf_counter() - started)
    if DELIVERER in app:
        app[DELIVERER].wake()
    counts = tally(outcomes)
    for status, count in counts.items():
        if count:
            app[METRICS].records.labels(status).inc(count)
    return json_response({"batch_id": batch_id, "accepted": counts["accepted"], "duplicates": counts["duplicate"],
                          "stale": counts["stale"], "rejected": counts["rejected"],
                          "results": [o.as_dict() for o in outcomes]})


async def rejections(request: web.Request) -> web.Response:
    """GET /v1/rejections: the caller's own quarantined records with their errors."""
    connector = connector_of(request)
    after = int_param(request, "after", 0)
    limit = int_param(request, "limit", 100, 1, 1000)
    store = request.app[STORE]
    rows = await store.call(store.store.records.rejections, connector.name, after, limit)
    return json_response({"rejections": rows, "next": str(rows[-1]["id"] if rows else after)})


async def trail(request: web.Request) -> web.Response:
    """GET /v1/records/{record_id}/trail: the exchange-log events of one of the caller's records."""
    connector = connector_of(request)
    record_id = request.match_info["record_id"]
    store = request.app[STORE]
    entries = await store.call(store.store.log.trail, connector.name, record_id)
    if not entries:
        raise Refusal(404, "not_found", f"没有记录 {record_id} 的事件 / no events of record {record_id!r} of yours")
    return json_response({"record_id": record_id, "events": [entry_dict(e) for e in entries]})


async def schemas_index(_request: web.Request) -> web.Response:
    """GET /v1/schemas: the record types of the standard interface."""
    schema_set = load_schema_set()
    return json_response({"version": schema_set.version, "types": [
        {"type": t.name, "title": t.title, "description": t.description, "sharing": t.sharing}
        for t in schema_set.types.values()]})


async def schema_one(request: web.Request) -> web.Response:
    """GET /v1/schemas/{record_type}: one JSON Schema."""
    schema_set = load_schema_set()
    name = request.match_info["record_type"]
    special = {"envelope": schema_set.envelope, "common": schema_set.common}
    if name not in schema_set.schemas and name not in special:
        raise Refusal(404, "not_found", f"未知的记录类型 / unknown record type {name!r}")
    return json_response(special.get(name) or schema_set.schemas[name])


_CONNECTOR, _ANY_CREDENTIAL = {"connector"}, {"connector", "auditor", "admin"}
ROUTES: list[Route] = [
    route("POST", "/v1/records", push, name="push", roles=_CONNECTOR, doc={
        "summary": "Push a batch of records", "requestBody": {"required": True, "content": PUSH_BODY},
        "responses": {"200": json_body(ref("PushResult"), "Per-record results; everything accepted is durable"),
                      **errors(400, 401, 403, 408, 413, 415, 429, 503)}}),
    route("GET", "/v1/rejections", rejections, name="rejections", roles=_CONNECTOR, doc={
        "summary": "The caller's quarantined records", "parameters": [CURSOR, LIMIT],
        "responses": {"200": json_body(obj(["rejections", "next"], rejections={"type": "array", "items": {
            "type": "object"}}, next={"type": "string"}), "Rejected records with their errors"),
            **errors(400, 401, 403)}}),
    route("GET", "/v1/records/{record_id}/trail", trail, name="trail", roles=_CONNECTOR, doc={
        "summary": "Exchange-log events of one of the caller's records", "parameters": [path_param("record_id")],
        "responses": {"200": json_body(obj(["record_id", "events"], record_id={"type": "string"}, events={
            "type": "array", "items": ref("LogEntry")}), "The record's events"), **errors(401, 403, 404)}}),
    route("GET", "/v1/schemas", schemas_index, name="schemas", roles=_ANY_CREDENTIAL, doc={
        "summary": "The record types of the standard interface",
        "responses": {"200": json_body(obj(["version", "types"], version={"type": "string"}, types={
            "type": "array", "items": {"type": "object"}}), "The record types"), **errors(401)}}),
    route("GET", "/v1/schemas/{record_type}", schema_one, name="schema", roles=_ANY_CREDENTIAL, doc={
        "summary": "The JSON Schema of a record type", "parameters": [path_param("record_type")],
        "responses": {"200": json_body({"type": "object"}, "A JSON Schema 2020-12 document"), **errors(401, 404)}}),
]
