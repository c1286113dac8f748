"""What the gateway's handlers share: the application's and requests' keys, and the JSON answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from gateway.config import Config
from gateway.flow.checkpoints import Checkpoints
from gateway.flow.delivery import Deliverer
from gateway.flow.in_force import PolicyInForce
from gateway.flow.prepare import PreparePool, RecordPreparer
from gateway.flow.procedure import Deadlines, SharingProcedure
from gateway.flow.sharing import Sharer
from gateway.flow.sources import Sources
from gateway.http.security import BodyBudget, FailureThrottle, Identity, NonceCache, RateLimiter, TokenBook
from gateway.observability import Metrics
from gateway.store.records import Nonce
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping

__all__ = ["BODIES", "BODY", "CHECKPOINTS", "CLOCK", "CONFIG", "DEADLINES", "DELIVERER", "IDENTITY", "IN_FORCE",
           "LIMITER", "MAPPINGS", "METRICS", "NONCE", "NONCES", "OPENAPI", "PREPARER", "PREPARE_POOL", "PROCEDURE",
           "SHARER", "SOURCES", "STORE", "THROTTLE", "TOKENS", "WARNINGS", "Clock", "error", "json_response"]

Clock = Callable[[], float]
# set when the app is made
CONFIG = web.AppKey("config", Config)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
METRICS = web.AppKey("metrics", Metrics)
NONCES = web.AppKey("nonces", NonceCache)
TOKENS = web.AppKey("tokens", TokenBook)
THROTTLE = web.AppKey("throttle", FailureThrottle)
BODIES = web.AppKey("bodies", BodyBudget)
LIMITER = web.AppKey("limiter", RateLimiter)
WARNINGS = web.AppKey("warnings", list[str])
PREPARER = web.AppKey("preparer", RecordPreparer)
MAPPINGS = web.AppKey("mappings", dict[str, CompiledMapping])
OPENAPI = web.AppKey("openapi", dict[str, Any])  # the document of the app's routes
# set when it starts
STORE = web.AppKey("store", StoreRunner)
IN_FORCE = web.AppKey("in_force", PolicyInForce)
SHARER = web.AppKey("sharer", Sharer)
DELIVERER = web.AppKey("deliverer", Deliverer)
SOURCES = web.AppKey("sources", Sources)
PROCEDURE = web.AppKey("procedure", SharingProcedure)
DEADLINES = web.AppKey("deadlines", Deadlines)
PREPARE_POOL = web.AppKey("prepare_pool", PreparePool)
CHECKPOINTS = web.AppKey("checkpoints", Checkpoints)
# set on each request the authentication admits
IDENTITY = web.RequestKey("identity", Identity)
BODY = web.RequestKey("body", bytes)
NONCE: web.RequestKey[Nonce] = web.RequestKey("nonce")


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(body=orjson.dumps(value), status=status, headers=headers, content_type="application/json")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error answer of every refusal."""
    return json_response({"error": {"code": code, "message": message}}, status, headers)
