"""The HTTP gateway (SPEC §3): an aiohttp app factory, small middlewares, thin handlers.

Handlers parse the request, call the pure core (``gateway.ingest``, ``schemas``) and the store
(on its own thread), and answer JSON. Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import console
from gateway.admin import ADMIN_ROUTES, add_admin_routes
from gateway.config import Config, resolve_mapping
from gateway.delivery import Deliverer
from gateway.exceptions import ReadLimitError, StoreUnavailableError
from gateway.exchange_log import LogEntry
from gateway.ingest import BodyError, RecordPreparer
from gateway.keys import (
    BODY,
    CLOCK,
    CONFIG,
    DELIVERER,
    IDENTITY,
    METRICS,
    SOURCES,
    STORE,
    Clock,
    connectors_in_force,
    error,
)
from gateway.keys import json_response as _json
from gateway.observability import Metrics, WriterCollector, new_id
from gateway.openapi import openapi_document
from gateway.preparing import INLINE_BELOW, PreparePool
from gateway.security import AuthError, Identity, NonceCache, RateLimiter, TokenBook, verify_connector
from gateway.sources import Sources
from gateway.store import LogFilter, open_store
from gateway.store.model import tally
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping
from schemas import load_schema_set

__all__ = ["CONFIG", "STORE", "create_app"]

PREPARER = web.AppKey("preparer", RecordPreparer)
MAPPINGS = web.AppKey("mappings", dict[str, CompiledMapping])
NONCES = web.AppKey("nonces", NonceCache)
LIMITER = web.AppKey("limiter", RateLimiter)
PREPARE_POOL = web.AppKey("prepare_pool", PreparePool)
TOKENS = web.AppKey("tokens", TokenBook)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("supex.gateway")

# route name -> roles admitted; routes not named here are public
ROLES: dict[str, frozenset[str]] = {
    "push": frozenset({"connector"}),
    "inbox": frozenset({"connector"}),
    "ack": frozenset({"connector"}),
    "rejections": frozenset({"connector"}),
    "trail": frozenset({"connector"}),
    "schemas": frozenset({"connector", "auditor", "admin"}),
    "schema": frozenset({"connector", "auditor", "admin"}),
    "audit_events": frozenset({"auditor"}),
    "audit_verify": frozenset({"auditor"}),
    "audit_export": frozenset({"auditor"}),
    **{name: frozenset({"admin"}) for name in ADMIN_ROUTES},
}


# ---- middlewares ------------------------------------------------------------------------------

@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, timing, metrics and one log line per request; no error escapes as a 500 page."""
    request_id = request.headers.get("X-Request-Id") or new_id()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    route = request.match_info.route.name or "unknown"
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except StoreUnavailableError as exc:
        log.warning("store_unavailable", reason=str(exc))
        response = error(503, "store_unavailable", "存储暂不可用 / the store cannot commit now; retry later",
                         {"Retry-After": "1"})
    except Exception:
        log.exception("unhandled_error", path=request.path)
        response = error(500, "internal_error", "内部错误 / internal error; the request id is " + request_id)
    elapsed = time.perf_counter() - started
    metrics = request.app[METRICS]
    metrics.requests.labels(request.method, route, str(response.status)).inc()
    metrics.latency.labels(route).observe(elapsed)
    identity = request.get(IDENTITY)
    log.info("request", method=request.method, path=request.path, status=response.status,
             ms=round(elapsed * 1000, 2), caller=identity.name if identity else None)
    response.headers["X-Request-Id"] = request_id
    structlog.contextvars.unbind_contextvars("request_id")
    return response


async def _read_body(request: web.Request, limit: int, seconds: float) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes (413: by its declared
    length before a byte is read), or when it has not all come within ``seconds`` (408: a client
    trickling it in holds nothing for long)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyError(413, "body_too_large", f"请求体超过 {limit} 字节 / the body exceeds {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, "body_too_large", f"请求体超过 {limit} 字节 / the body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(408, "body_timeout", f"请求体未在 {seconds:g} 秒内送达 / the body did not arrive within "
                        f"{seconds:g} s") from None
    return b"".join(chunks)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit a route's roles only: signed connectors, or auditors and admins by bearer token."""
    roles = ROLES.get(request.match_info.route.name or "")
    if roles is None:
        return await handler(request)
    app, metrics = request.app, request.app[METRICS]
    try:
        body = await _read_body(request, app[CONFIG].gateway.max_body, app[CONFIG].gateway.read_timeout_seconds)
    except BodyError as exc:
        return error(exc.status, exc.code, exc.message)
    try:
        identity = _identify(request, body)
        if identity.role not in roles:
            raise AuthError(403, "forbidden", f"角色 {identity.role} 无权访问 / the {identity.role} role may not "
                            "use this endpoint")
    except AuthError as exc:
        metrics.refusals.labels(str(exc.status)).inc()
        log.warning("refused", status=exc.status, reason=exc.message, path=request.path)
        return error(exc.status, exc.code, exc.message)
    wait = app[LIMITER].wait_needed(identity.name) if identity.role == "connector" else 0.0
    if wait > 0:
        metrics.refusals.labels("429").inc()
        return error(429, "rate_limited", f"请求过于频繁 / too many requests: retry after {math.ceil(wait)} s",
                     {"Retry-After": str(math.ceil(wait))})
    request[IDENTITY], request[BODY] = identity, body
    return await handler(request)


def _identify(request: web.Request, body: bytes) -> Identity:
    app = request.app
    bearer = request.headers.get("Authorization", "")
    if bearer.startswith("Bearer "):
        identity = app[TOKENS].identify(bearer.removeprefix("Bearer ").strip())
        if identity is None:
            raise AuthError(401, "unauthorized", "令牌无效 / invalid bearer token")
        return identity
    if "X-Supex-Key" not in request.headers:
        raise AuthError(401, "unauthorized", "缺少认证信息 / authentication required (signature or bearer token)")
    config = app[CONFIG]
    return verify_connector(request.headers, request.method, request.raw_path, body,
                            connectors=connectors_in_force(app), secrets=config.secrets, nonces=app[NONCES],
                            skew=config.gateway.clock_skew_seconds, now=app[CLOCK]())


# ---- handlers ---------------------------------------------------------------------------------

def _connector(request: web.Request) -> Identity:
    identity = request[IDENTITY]
    assert identity.connector is not None
    return identity


def _int_param(request: web.Request, name: str, default: int | None, low: int = 0, high: int = 2**62) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise web.HTTPBadRequest(reason=f"Bad parameter {name}: a whole number from {low} to {high}")
    return int(raw)


async def push(request: web.Request) -> web.Response:
    """POST /v1/records: validate and store a batch; 200 only after everything accepted is durable."""
    identity = _connector(request)
    connector = identity.connector
    assert connector is not None
    app = request.app
    store = app[STORE]
    batch_id = new_id()
    body, content_type, received_at = request[BODY], request.headers.get("Content-Type", ""), store.store.now()
    pool = app.get(PREPARE_POOL)
    small = len(body) < INLINE_BELOW
    try:
        if pool is None or small:
            prepared = app[PREPARER].prepare(connector, app[MAPPINGS].get(connector.id), body, content_type,
                                             received_at)
        else:
            prepared = await pool.prepare(connector.id, body, content_type, received_at)
    except BodyError as exc:
        return error(exc.status, exc.code, exc.message)
    started = time.perf_counter()
    # committed on the store thread together with whatever else is waiting (group commit): the
    # loop goes on serving while the disk syncs, and concurrent pushes share one fsync
    outcomes = await store.ingest(connector.id, batch_id, prepared.incoming, prepared.rejected)
    app[METRICS].commit.observe(time.perf_counter() - started)
    if DELIVERER in app:
        app[DELIVERER].wake()
    counts = tally(outcomes)
    for status, count in counts.items():
        if count:
            app[METRICS].records.labels(status).inc(count)
    return _json({"batch_id": batch_id, "accepted": counts["accepted"], "duplicates": counts["duplicate"],
                  "stale": counts["stale"], "rejected": counts["rejected"],
                  "results": [o.as_dict() for o in outcomes]})


async def inbox(request: web.Request) -> web.Response:
    """GET /v1/inbox: records shared with the caller after the cursor, oldest first, as its policy shows them."""
    connector = _connector(request).connector
    assert connector is not None
    after = _int_param(request, "after", None)
    limit = _int_param(request, "limit", 100, 1, 1000)
    assert limit is not None
    store = request.app[STORE]
    try:
        page = await store.call(store.store.inbox, connector.id, after, limit)
    except ReadLimitError as exc:
        return error(429, "read_limit", str(exc), {"Retry-After": str(exc.retry_after)})
    if page.overdue:
        request.app[METRICS].overdue.labels(connector.id).inc(page.overdue)
    return _json({"records": [r.record for r in page.records], "next": str(page.next)})


async def ack(request: web.Request) -> web.Response:
    """POST /v1/inbox/ack: everything up to the cursor is consumed."""
    connector = _connector(request)
    try:
        cursor = int(orjson.loads(request[BODY])["cursor"])
        if cursor < 0:
            raise ValueError(cursor)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return error(400, "malformed", '请求体应为 {"cursor": C} / the body must be {"cursor": C}, C a cursor')
    store = request.app[STORE]
    acked = await store.call(store.store.ack, connector.name, cursor)
    return _json({"acked": str(acked)})


async def rejections(request: web.Request) -> web.Response:
    """GET /v1/rejections: the caller's own quarantined records with their errors."""
    connector = _connector(request)
    after = _int_param(request, "after", 0)
    limit = _int_param(request, "limit", 100, 1, 1000)
    store = request.app[STORE]
    rows = await store.call(store.store.rejections, connector.name, after, limit)
    return _json({"rejections": rows, "next": str(rows[-1]["id"] if rows else after)})


def _entry_dict(entry: LogEntry) -> dict[str, Any]:
    data = entry.content()
    data.update(prev_hash=entry.prev_hash, hash=entry.hash)
    return {k: v for k, v in data.items() if v not in (None, [], "")}


async def trail(request: web.Request) -> web.Response:
    """GET /v1/records/{record_id}/trail: the exchange-log events of one of the caller's records."""
    connector = _connector(request)
    record_id = request.match_info["record_id"]
    store = request.app[STORE]
    entries = await store.call(store.store.trail, connector.name, record_id)
    if not entries:
        return error(404, "not_found", f"没有记录 {record_id} 的事件 / no events of record {record_id!r} of yours")
    return _json({"record_id": record_id, "events": [_entry_dict(e) for e in entries]})


async def schemas_index(_request: web.Request) -> web.Response:
    """GET /v1/schemas: the record types of the standard interface."""
    schema_set = load_schema_set()
    return _json({"version": schema_set.version, "types": [
        {"type": t.name, "title": t.title, "description": t.description, "sharing": t.sharing}
        for t in schema_set.types.values()]})


async def schema_one(request: web.Request) -> web.Response:
    """GET /v1/schemas/{record_type}: one JSON Schema."""
    schema_set = load_schema_set()
    name = request.match_info["record_type"]
    special = {"envelope": schema_set.envelope, "common": schema_set.common}
    if name not in schema_set.schemas and name not in special:
        return error(404, "not_found", f"未知的记录类型 / unknown record type {name!r}")
    return _json(special.get(name) or schema_set.schemas[name])


async def _audited(request: web.Request, what: str) -> None:
    identity = request[IDENTITY]
    store = request.app[STORE]
    entry = LogEntry("audit_query", store.store.now(), connector=None, counterpart=identity.name,
                     reason=f"{what} {request.query_string}"[:500])
    await store.call(store.store.append_log, [entry])


def _log_filter(request: web.Request) -> LogFilter:
    q = request.query
    return LogFilter(since=q.get("from"), until=q.get("to"), connector=q.get("connector"),
                     counterpart=q.get("counterpart"), record_type=q.get("record_type"),
                     record_id=q.get("record_id"), event=q.get("event"), rule=q.get("rule"))


async def audit_events(request: web.Request) -> web.Response:
    """GET /v1/audit/events: exchange-log entries by filter, paged by seq."""
    after = _int_param(request, "after", 0) or 0
    limit = _int_param(request, "limit", 100, 1, 1000) or 100
    where = _log_filter(request)
    await _audited(request, "events")
    store = request.app[STORE]
    entries = await store.call(lambda: list(store.store.log_entries(after=after, where=where, limit=limit)))
    return _json({"events": [_entry_dict(e) for e in entries], "next": str(entries[-1].seq if entries else after)})


async def audit_verify(request: web.Request) -> web.Response:
    """GET /v1/audit/verify: the whole hash chain checked."""
    store = request.app[STORE].store
    # beside the store thread, on connections of its own: writes go on while the chain is checked
    outcome = await asyncio.get_running_loop().run_in_executor(None, lambda: list(store.verify_log())[-1])
    await _audited(request, "verify")
    return _json({"ok": outcome.ok, "entries": outcome.entries, "first_bad_seq": outcome.first_bad_seq,
                  "reason": outcome.reason})


async def audit_export(request: web.Request) -> web.StreamResponse:
    """GET /v1/audit/export: the log entries as an NDJSON stream."""
    after = _int_param(request, "after", 0)  # every parameter is checked before the stream starts
    where = _log_filter(request)
    await _audited(request, "export")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    store = request.app[STORE]
    while True:
        start = after
        chunk = await store.call(lambda s=start: list(store.store.log_entries(after=s, where=where, limit=2000)))
        if not chunk:
            break
        await response.write(b"".join(orjson.dumps(_entry_dict(e)) + b"\n" for e in chunk))
        after = chunk[-1].seq
    await response.write_eof()
    return response


async def healthz(_request: web.Request) -> web.Response:
    """Liveness."""
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers."""
    store = request.app[STORE]
    try:
        ready = await store.call(store.store.ping)
    except Exception:  # noqa: BLE001 - any failure to answer means not ready
        ready = False
    return _json({"status": "ready" if ready else "unavailable"}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    app = request.app
    store = app[STORE]
    app[METRICS].log_entries.set((await store.call(store.store.log_head))[0])
    body = generate_latest(app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(_request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document."""
    return _json(openapi_document())


# ---- the app ----------------------------------------------------------------------------------

async def follow_config_changes(app: web.Application, seen: int) -> int:
    """Route with the rules and connector states in the store again if a change has been logged
    since ``seen`` (by this gateway or another on the database); returns the change now seen."""
    runner, config = app[STORE], app[CONFIG]
    store = runner.store
    latest = await runner.call(store.last_config_change)
    if latest != seen:
        await runner.call(lambda: store.set_policy(config.policy(store.runtime_rules(), store.connector_states())))
        if DELIVERER in app:
            app[DELIVERER].wake()
    return latest


async def _housekeeping(app: web.Application, every: float = 0.2, follow_every: int = 10) -> None:
    """Checkpoint the WAL five times a second, beside the writer, so that no backlog builds up; and
    every two seconds take up rules and connector states changed at another gateway."""
    runner = app[STORE]
    loop = asyncio.get_running_loop()
    seen = await runner.call(runner.store.last_config_change)
    for turn in itertools.count(1):
        await asyncio.sleep(every)
        try:
            await loop.run_in_executor(None, runner.store.checkpoint)
            if turn % follow_every == 0:
                seen = await follow_config_changes(app, seen)
        except Exception as exc:  # noqa: BLE001 - retried at the next turn
            log.warning("housekeeping_failed", reason=str(exc))


def _store_context(given: StoreRunner | None, deliver: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        runner = given or StoreRunner(open_store(config.store_path(), log_hash=config.gateway.log_hash,
                                                 cipher=config.data_cipher,
                                                 lease_seconds=config.gateway.delivery_lease_seconds))
        app[STORE] = runner
        store = runner.store
        store.check_keys()
        app[METRICS].registry.register(WriterCollector(lambda: (store.writer.waited, store.writer.held)))
        if store.cipher is None:
            log.warning("no_data_key", hint="important and core payloads are stored in plaintext: set data_key_env "
                        "or data_key_file (docs/security.md)")
        await runner.call(lambda: store.set_policy(config.policy(store.runtime_rules(), store.connector_states())))
        task = asyncio.create_task(_housekeeping(app))
        mappings: dict[str, CompiledMapping] = app[MAPPINGS]
        deliverer = Deliverer(config, runner, app[METRICS], mappings, clock=app[CLOCK])
        app[DELIVERER] = deliverer
        sources = Sources(config, runner, app[PREPARER], mappings, clock=app[CLOCK])
        app[SOURCES] = sources
        if deliver:
            await deliverer.start()
            sources.start()
        yield
        await sources.stop()
        await deliverer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        runner.close()

    return context


async def _pool_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = PreparePool(config, config.gateway.preparers) if config.gateway.preparers else None
    if pool is not None:
        await pool.warm_up()
        app[PREPARE_POOL] = pool
    yield
    if pool is not None:
        pool.close()


def _add_routes(r: web.UrlDispatcher) -> None:
    r.add_post("/v1/records", push, name="push")
    r.add_get("/v1/inbox", inbox, name="inbox")
    r.add_post("/v1/inbox/ack", ack, name="ack")
    r.add_get("/v1/rejections", rejections, name="rejections")
    r.add_get("/v1/records/{record_id}/trail", trail, name="trail")
    r.add_get("/v1/schemas", schemas_index, name="schemas")
    r.add_get("/v1/schemas/{record_type}", schema_one, name="schema")
    r.add_get("/v1/audit/events", audit_events, name="audit_events")
    r.add_get("/v1/audit/verify", audit_verify, name="audit_verify")
    r.add_get("/v1/audit/export", audit_export, name="audit_export")
    r.add_get("/healthz", healthz, name="healthz")
    r.add_get("/readyz", readyz, name="readyz")
    r.add_get("/metrics", metrics, name="metrics")
    r.add_get("/openapi.json", openapi, name="openapi")
    add_admin_routes(r)


def create_app(config: Config, *, clock: Clock = time.time, monotonic_clock: Clock = time.monotonic,
               store: StoreRunner | None = None, deliver: bool = True) -> web.Application:
    """The gateway application for ``config``; the store is opened on start-up unless given. With
    ``deliver=False`` nothing runs in the background: push deliveries wait until
    ``app[DELIVERER].deliver_once`` is called, sources until ``app[SOURCES]`` is driven."""
    app = web.Application(middlewares=[observe, authenticate], client_max_size=config.gateway.max_body)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[NONCES] = NonceCache(config.gateway.clock_skew_seconds, clock)
    app[TOKENS] = TokenBook(config)
    app[LIMITER] = RateLimiter({c.id: c.max_requests_per_second for c in config.connector
                                if c.max_requests_per_second}, monotonic_clock)
    app[PREPARER] = RecordPreparer(log_hash=config.gateway.log_hash, max_records=config.gateway.max_records)
    app[MAPPINGS] = {c.id: resolve_mapping(name, config.base_dir) for c in config.connector
                     if (name := c.mapping_name)}
    app.cleanup_ctx.append(_store_context(store, deliver))
    app.cleanup_ctx.append(_pool_context)
    _add_routes(app.router)
    console.install(app, monotonic_clock)
    return app
