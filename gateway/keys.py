"""What the gateway's handlers share: application and request keys, and the JSON answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from gateway.config import Config
from gateway.delivery import Deliverer
from gateway.observability import Metrics
from gateway.security import Identity
from gateway.store.runner import StoreRunner

__all__ = ["BODY", "CLOCK", "CONFIG", "DELIVERER", "IDENTITY", "METRICS", "STORE", "Clock", "error", "json_response"]

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", StoreRunner)
METRICS = web.AppKey("metrics", Metrics)
DELIVERER = web.AppKey("deliverer", Deliverer)
Clock = Callable[[], float]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
IDENTITY = web.RequestKey("identity", Identity)
BODY = web.RequestKey("body", bytes)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(body=orjson.dumps(value), status=status, headers=headers, content_type="application/json")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error answer of every refusal."""
    return json_response({"error": {"code": code, "message": message}}, status, headers)
