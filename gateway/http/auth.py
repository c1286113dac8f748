"""Who may call each route: the roles its declaration admits (``gateway.http.routes``), checked
before the handler runs.

Signed connectors, or auditors and admins by bearer token. Whatever the headers alone can refuse
is refused before a body byte is read, and the connection closed; the connector's signature over
the body is checked once it has come, and its nonce recorded (a replay refused at any gateway on
the store). Console pages admit an auditor's session (``gateway.http.console.admit``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from connectors.signing import HEADER_KEY
from gateway.exceptions import AuthError, BodyError, ParameterError, Refusal
from gateway.http import console
from gateway.http.context import (
    BODIES,
    BODY,
    CLOCK,
    CONFIG,
    IDENTITY,
    IN_FORCE,
    LIMITER,
    METRICS,
    NONCE,
    NONCES,
    STORE,
    THROTTLE,
    TOKENS,
)
from gateway.http.routes import ACCESS, CONSOLE, PUBLIC, QUERY_PARAMETERS
from gateway.http.security import (
    BodyBudget,
    ConnectorClaim,
    Identity,
    claim_connector,
    client_key,
    header_text,
    verify_signature,
)
from gateway.store.records import Nonce

__all__ = ["STORE_THEIR_NONCE", "authenticate", "read_body"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STORE_THEIR_NONCE = frozenset({"push"})  # routes whose handler records the nonce in its own transaction


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit a route's declared roles only; raises ``AuthError`` (answered by ``observe``)."""
    if request.match_info.http_exception is not None:  # no such route: aiohttp answers 404 or 405
        return await handler(request)
    name = request.match_info.route.name or ""
    roles = request.app[ACCESS].get(name)
    if roles is None:  # cannot happen after check_declared; deny all the same
        raise AuthError(403, "forbidden", "此路由未声明角色 / this route admits no one")
    taken = request.app[QUERY_PARAMETERS].get(name)
    if PUBLIC in roles:
        _check_parameters(request, taken)
        return await handler(request)
    if CONSOLE in roles:
        return await console.admit(request, handler)
    app = request.app
    config = app[CONFIG].gateway
    identity, claim = _claimed(request)
    if identity.role not in roles:
        raise AuthError(403, "forbidden", f"角色 {identity.role} 无权访问 / the {identity.role} role may not use "
                        "this endpoint")
    _check_parameters(request, taken)  # before a byte of the body is read
    body = await read_body(request, config.max_body, config.read_timeout_seconds, app[BODIES])
    if claim is not None:
        identity = verify_signature(claim, request.method, request.raw_path, body,
                                    app[CONFIG].secrets[claim.connector.id])
        request[NONCE] = await _first_use(app, claim,
                                          stored_by_handler=request.match_info.route.name in STORE_THEIR_NONCE)
        wait = math.ceil(app[LIMITER].wait_needed(identity.name))
        if wait > 0:
            app[METRICS].refusals.labels("429").inc()
            raise Refusal(429, "rate_limited", f"请求过于频繁 / too many requests: retry after {wait} s",
                          retry_after=wait)
    request[IDENTITY], request[BODY] = identity, body
    return await handler(request)


def _check_parameters(request: web.Request, taken: frozenset[str] | None) -> None:
    """Refuse a query parameter the route does not take (``taken``: ``None``, not checked), and one
    given twice: which of its values was meant cannot be told, and one would be ignored."""
    if taken is None:
        return
    unknown = sorted(set(request.query) - taken)
    if unknown:
        takes, named = ", ".join(sorted(taken)) or "none", ", ".join(ascii(n)[:40] for n in unknown[:5])
        raise ParameterError(f"未知的参数 {named} / unknown query parameter {named}: this endpoint takes {takes}")
    if len(request.query) != len(set(request.query)):
        twice = ", ".join(sorted({ascii(n)[:40] for n in request.query if len(request.query.getall(n)) > 1}))
        raise ParameterError(f"参数 {twice} 重复出现 / the query parameter {twice} is given more than once")


async def read_body(request: web.Request, limit: int, seconds: float, budget: BodyBudget) -> bytes:
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
                                    "retry after the others", retry_after=1)
                size += len(chunk)
                if size > limit:
                    raise BodyError(413, "body_too_large", f"请求体超过 {limit} 字节 / the body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise BodyError(408, "body_timeout", f"请求体未在 {seconds:g} 秒内送达 / the body did not arrive within "
                        f"{seconds:g} s") from exc
    except ConnectionError as exc:  # the client went away mid-body: nobody to answer, nothing to log as a fault
        raise BodyError(400, "body_incomplete", "请求体未送完，连接已断开 / the connection closed before the body "
                        "had come") from exc
    finally:
        budget.give_back(client, size)
    return b"".join(chunks)


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
    claim = claim_connector(request.headers, connectors=app[IN_FORCE].connectors,
                            skew=app[CONFIG].gateway.clock_skew_seconds, now=app[CLOCK]())
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
