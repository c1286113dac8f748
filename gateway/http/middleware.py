"""The middleware every request passes first: a request id, timing, metrics and one log line per
request, and every refusal answered in one way — ``{"error": {"code", "message"}}`` — whichever
room raised it. No error escapes as a 500 page."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.exceptions import AuthError, LogIntegrityError, Refusal, StoreUnavailableError
from gateway.http.context import IDENTITY, METRICS, error
from gateway.http.serving import GUARD
from gateway.observability import new_id

__all__ = ["observe", "refused"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("supex.gateway")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def refused(request: web.Request, exc: Refusal) -> web.Response:
    """The answer to a refused request. A caller refused by its credentials (``AuthError``) is
    counted and logged, and its connection closed (nothing more of its body is read)."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    response = error(exc.status, exc.code, exc.message, headers)
    if isinstance(exc, AuthError):
        request.app[METRICS].refusals.labels(str(exc.status)).inc()
        log.warning("refused", status=exc.status, reason=exc.message, path=request.path, address=request.remote)
        response.force_close()
        if GUARD in request.app:
            request.app[GUARD].cut_off(request.transport)
    return response


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, timing, metrics and one log line per request; every refusal answered alike."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if _REQUEST_ID.fullmatch(given) else new_id()  # echoed only when harmless
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    route = request.match_info.route.name or "unknown"
    try:
        response = await handler(request)
    except Refusal as exc:
        response = refused(request, exc)
    except web.HTTPException as exc:
        response = error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except LogIntegrityError as exc:  # the store was changed behind the gateway: say where, not "internal"
        log.error("log_integrity", reason=str(exc), path=request.path)
        response = error(500, "log_integrity", str(exc))
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
