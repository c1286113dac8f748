"""The HTTP gateway (SPEC §3): an aiohttp app factory, small middlewares, thin handlers.

Handlers parse the request, call the pure core (``gateway.ingest``, ``schemas``) and the store
(on its own thread), and answer JSON. Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.signing import HEADER_KEY
from gateway import console
from gateway.access import ACCESS, CONSOLE, PUBLIC, Routes, check_declared
from gateway.admin import add_admin_routes
from gateway.config import Config, resolve_mapping
from gateway.delivery import Deliverer
from gateway.exceptions import ReadLimitError, ReplayError, StoreUnavailableError
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
    THROTTLE,
    Clock,
    connectors_in_force,
    error,
)
from gateway.keys import json_response as _json
from gateway.observability import Metrics, SourceCollector, WriterCollector, new_id
from gateway.openapi import openapi_document
from gateway.preparing import INLINE_BELOW, PreparePool
from gateway.safety import at_rest_warnings
from gateway.security import (
    AuthError,
    BodyBudget,
    ConnectorClaim,
    FailureThrottle,
    Identity,
    NonceCache,
    RateLimiter,
    TokenBook,
    claim_connector,
    client_key,
    header_text,
    verify_signature,
)
from gateway.serving import GUARD
from gateway.sources import Sources
from gateway.store import LogFilter, open_store
from gateway.store.model import tally
from gateway.store.runner import StoreRunner
from gateway.store.sql import Nonce
from mappings import CompiledMapping
from schemas import load_schema_set

__all__ = ["CONFIG", "STORE", "create_app"]

PREPARER = web.AppKey("preparer", RecordPreparer)
MAPPINGS = web.AppKey("mappings", dict[str, CompiledMapping])
NONCES = web.AppKey("nonces", NonceCache)
LIMITER = web.AppKey("limiter", RateLimiter)
PREPARE_POOL = web.AppKey("prepare_pool", PreparePool)
TOKENS = web.AppKey("tokens", TokenBook)
WARNINGS = web.AppKey("warnings", list[str])
BODIES = web.AppKey("bodies", BodyBudget)
NONCE: web.RequestKey[Nonce] = web.RequestKey("nonce")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("supex.gateway")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_STORE_THEIR_NONCE = frozenset({"push"})  # handlers that record the nonce in their own transaction

class ParameterError(ValueError):
    """A query parameter that is not what its endpoint takes (400 ``bad_parameter``)."""


# ---- middlewares ------------------------------------------------------------------------------

@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, timing, metrics and one log line per request; no error escapes as a 500 page."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else new_id()  # echoed only when harmless
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    route = request.match_info.route.name or "unknown"
    try:
        response = await handler(request)
    except ParameterError as exc:
        response = error(400, "bad_parameter", str(exc))
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
    if GUARD in request.app:
        request.app[GUARD].answered(request.transport)
    return response


async def _read_body(request: web.Request, limit: int, seconds: float, budget: BodyBudget) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes (413: by its declared
    length before a byte is read), when it has not all come within ``seconds`` (408: a client
    trickling it in holds nothing for long), or when its client has more bodies in flight than
    its ``budget`` allows (429)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyError(413, "body_too_large", f"请求体超过 {limit} 字节 / the body exceeds {limit} bytes")
    chunks, size, client = [], 0, client_key(request.remote)
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.content.iter_chunked(1 << 16):
                if not budget.take(client, len(chunk)):
                    raise BodyError(429, "too_many_bodies", f"同时发送的请求体超过 {budget.per_client} 字节 / this "
                                    f"client is sending more than {budget.per_client} bytes of bodies at once: "
                                    "retry after the others")
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, "body_too_large", f"请求体超过 {limit} 字节 / the body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyError(408, "body_timeout", f"请求体未在 {seconds:g} 秒内送达 / the body did not arrive within "
                        f"{seconds:g} s") from None
    except ConnectionError:  # the client went away mid-body: nobody to answer, nothing to log as a fault
        raise BodyError(400, "body_incomplete", "请求体未送完，连接已断开 / the connection closed before the body "
                        "had come") from None
    finally:
        budget.give_back(client, size)
    return b"".join(chunks)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit a route's declared roles only: signed connectors, or auditors and admins by bearer
    token. Whatever the headers alone can refuse is refused before a body byte is read, and the
    connection closed; the connector's signature over the body is checked once it has come."""
    if request.match_info.http_exception is not None:  # no such route: aiohttp answers 404 or 405
        return await handler(request)
    roles = request.app[ACCESS].get(request.match_info.route.name or "")
    if roles is None:  # cannot happen after check_declared; deny all the same
        return _refused(request, AuthError(403, "forbidden", "此路由未声明角色 / this route admits no one"))
    if PUBLIC in roles:
        return await handler(request)
    if CONSOLE in roles:
        return await console.admit(request, handler)
    return await _credentialed(request, handler, roles)


async def _credentialed(request: web.Request, handler: Handler, roles: frozenset[str]) -> web.StreamResponse:
    app = request.app
    config = app[CONFIG].gateway
    try:
        identity, claim = _claimed(request)
        if identity.role not in roles:
            raise AuthError(403, "forbidden", f"角色 {identity.role} 无权访问 / the {identity.role} role may not use "
                            "this endpoint")
        body = await _read_body(request, config.max_body, config.read_timeout_seconds, app[BODIES])
        if claim is not None:
            identity = verify_signature(claim, request.method, request.raw_path, body,
                                        app[CONFIG].secrets[claim.connector.id])
            request[NONCE] = await _first_use(app, claim,
                                              stored_by_handler=request.match_info.route.name in _STORE_THEIR_NONCE)
            wait = math.ceil(app[LIMITER].wait_needed(identity.name))
            if wait > 0:
                app[METRICS].refusals.labels("429").inc()
                return error(429, "rate_limited", f"请求过于频繁 / too many requests: retry after {wait} s",
                             {"Retry-After": str(wait)})
    except AuthError as exc:
        return _refused(request, exc)
    except BodyError as exc:
        return error(exc.status, exc.code, exc.message, {"Retry-After": "1"} if exc.status == 429 else None)
    request[IDENTITY], request[BODY] = identity, body
    return await handler(request)


def _claimed(request: web.Request) -> tuple[Identity, ConnectorClaim | None]:
    """Who the headers say the caller is: a bearer token's holder (checked, and throttled), or a
    connector whose claim is checked as far as headers allow (its signature still to check)."""
    app = request.app
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        address, throttle = client_key(request.remote), app[THROTTLE]
        wait = throttle.wait(address)
        if wait:
            raise AuthError(429, "too_many_failures", f"认证失败次数过多，请 {wait} 秒后再试 / too many failed "
                            f"attempts: retry after {wait} s", retry_after=wait)
        scheme, _, token = header_text(request.headers, "Authorization", limit=600).partition(" ")
        identity = app[TOKENS].identify(token.strip()) if scheme == "Bearer" else None
        if identity is None:
            throttle.failed(address)
            app[METRICS].auth_failures.labels("bearer").inc()
            raise AuthError(401, "unauthorized", "令牌无效 / invalid bearer token")
        throttle.succeeded(address)
        return identity, None
    if HEADER_KEY not in request.headers:
        raise AuthError(401, "unauthorized", "缺少认证信息 / authentication required (signature or bearer token)")
    config = app[CONFIG].gateway
    claim = claim_connector(request.headers, connectors=connectors_in_force(app), skew=config.clock_skew_seconds,
                            now=app[CLOCK]())
    return Identity("connector", claim.connector.id, claim.connector), claim


async def _first_use(app: web.Application, claim: ConnectorClaim, *, stored_by_handler: bool) -> Nonce:
    """Refuse a nonce used before: at this gateway (kept in memory), or at any gateway on the
    store since its timestamp's window opened (kept in the store, across restarts). A push records
    its nonce in the transaction that stores its batch (one commit, not two); everything else here."""
    key, nonce = claim.connector.id, claim.nonce
    until = int(claim.timestamp) + app[CONFIG].gateway.clock_skew_seconds + 1
    if not app[NONCES].first_use(key, nonce) or not (stored_by_handler or await app[STORE].first_use(key, nonce,
                                                                                                     until)):
        raise AuthError(401, "unauthorized", "随机数已使用（重放）/ nonce already used (replay)")
    return key, nonce, until


def _refused(request: web.Request, exc: AuthError) -> web.Response:
    """The answer to a caller refused by its credentials: counted, logged, and the connection
    closed (nothing more of its body is read)."""
    request.app[METRICS].refusals.labels(str(exc.status)).inc()
    log.warning("refused", status=exc.status, reason=exc.message, path=request.path, address=request.remote)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    response = error(exc.status, exc.code, exc.message, headers)
    response.force_close()
    if GUARD in request.app:
        request.app[GUARD].cut_off(request.transport)
    return response


# ---- handlers ---------------------------------------------------------------------------------

def _connector(request: web.Request) -> Identity:
    identity = request[IDENTITY]
    assert identity.connector is not None
    return identity


def _int_param(request: web.Request, name: str, default: int | None, low: int = 0, high: int = 2**62) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise ParameterError(f"参数 {name} 应为 {low} 到 {high} 的整数 / the {name} parameter must be a whole number "
                             f"from {low} to {high}, in ASCII digits")
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
    try:
        outcomes = await store.ingest(connector.id, batch_id, prepared.incoming, prepared.rejected,
                                      nonce=request[NONCE])
    except ReplayError as exc:  # its nonce recorded by another gateway meanwhile, or before a restart
        return _refused(request, AuthError(401, "unauthorized", str(exc)))
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
        given = orjson.loads(request[BODY])["cursor"]
        if isinstance(given, str) and given.isascii() and given.isdigit() and len(given) <= 19:
            given = int(given)
        if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= 2**62:
            raise ValueError(given)
        cursor = given
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


def _text_param(request: web.Request, name: str, limit: int = 200) -> str | None:
    """A text query parameter: at most ``limit`` characters, none of them controls or broken
    UTF-8 (otherwise 400 naming it)."""
    raw = request.query.get(name)
    if raw is not None and (len(raw) > limit or not raw.isprintable() or "\ufffd" in raw
                            or any("\ud800" <= c <= "\udfff" for c in raw)):
        raise ParameterError(f"参数 {name} 应为不超过 {limit} 个可打印字符的 UTF-8 文本 / the {name} parameter must be "
                             f"at most {limit} printable characters of valid UTF-8")
    return raw


def _log_filter(request: web.Request) -> LogFilter:
    names = {"since": "from", "until": "to", "connector": "connector", "counterpart": "counterpart",
             "record_type": "record_type", "record_id": "record_id", "event": "event", "rule": "rule"}
    return LogFilter(**{field: _text_param(request, name) for field, name in names.items()})


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


async def healthz(request: web.Request) -> web.Response:
    """Liveness, and the settings an operator chose that leave data less safe (if any)."""
    warnings = request.app[WARNINGS]
    return _json({"status": "ok", **({"warnings": warnings} if warnings else {})})


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


async def _housekeeping(app: web.Application, every: float = 0.2, follow_every: int = 10,
                        forget_every: int = 300) -> None:
    """Checkpoint the WAL five times a second, beside the writer, so that no backlog builds up;
    every two seconds take up rules and connector states changed at another gateway; and every
    minute forget the nonces whose window has passed."""
    runner = app[STORE]
    loop = asyncio.get_running_loop()
    seen = await runner.call(runner.store.last_config_change)
    for turn in itertools.count(1):
        await asyncio.sleep(every)
        try:
            await loop.run_in_executor(None, runner.store.checkpoint)
            if turn % follow_every == 0:
                seen = await follow_config_changes(app, seen)
            if turn % forget_every == 0:
                await runner.call(runner.store.forget_nonces, app[CLOCK]())
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
        await runner.call(lambda: store.set_policy(config.policy(store.runtime_rules(), store.connector_states())))
        task = asyncio.create_task(_housekeeping(app))
        mappings: dict[str, CompiledMapping] = app[MAPPINGS]
        deliverer = Deliverer(config, runner, app[METRICS], mappings, clock=app[CLOCK])
        app[DELIVERER] = deliverer
        sources = Sources(config, runner, app[PREPARER], mappings, clock=app[CLOCK])
        app[SOURCES] = sources
        app[METRICS].registry.register(SourceCollector(sources.status))
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


def _add_routes(routes: Routes) -> None:
    connector, anyone = {"connector"}, {PUBLIC}
    routes.add("POST", "/v1/records", push, name="push", roles=connector)
    routes.add("GET", "/v1/inbox", inbox, name="inbox", roles=connector)
    routes.add("POST", "/v1/inbox/ack", ack, name="ack", roles=connector)
    routes.add("GET", "/v1/rejections", rejections, name="rejections", roles=connector)
    routes.add("GET", "/v1/records/{record_id}/trail", trail, name="trail", roles=connector)
    routes.add("GET", "/v1/schemas", schemas_index, name="schemas", roles={"connector", "auditor", "admin"})
    routes.add("GET", "/v1/schemas/{record_type}", schema_one, name="schema", roles={"connector", "auditor", "admin"})
    routes.add("GET", "/v1/audit/events", audit_events, name="audit_events", roles={"auditor"})
    routes.add("GET", "/v1/audit/verify", audit_verify, name="audit_verify", roles={"auditor"})
    routes.add("GET", "/v1/audit/export", audit_export, name="audit_export", roles={"auditor"})
    routes.add("GET", "/healthz", healthz, name="healthz", roles=anyone)
    routes.add("GET", "/readyz", readyz, name="readyz", roles=anyone)
    routes.add("GET", "/metrics", metrics, name="metrics", roles=anyone)
    routes.add("GET", "/openapi.json", openapi, name="openapi", roles=anyone)
    add_admin_routes(routes)


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
    app[THROTTLE] = FailureThrottle(clock=monotonic_clock)
    app[BODIES] = BodyBudget(2 * config.gateway.max_body)
    app[LIMITER] = RateLimiter({c.id: c.max_requests_per_second for c in config.connector
                                if c.max_requests_per_second}, monotonic_clock)
    app[WARNINGS] = at_rest_warnings(config)
    app[PREPARER] = RecordPreparer(log_hash=config.gateway.log_hash, max_records=config.gateway.max_records,
                                    extra_regions=config.gateway.extra_region_codes)
    app[MAPPINGS] = {c.id: resolve_mapping(name, config.base_dir) for c in config.connector
                     if (name := c.mapping_name)}
    app.cleanup_ctx.append(_store_context(store, deliver))
    app.cleanup_ctx.append(_pool_context)
    routes = Routes(app)
    _add_routes(routes)
    console.install(app, routes, monotonic_clock)
    check_declared(app)
    return app
