"""What the gateway's handlers share: application and request keys, and the JSON answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson
from aiohttp import web

from gateway.config import Config, ConnectorConfig
from gateway.delivery import Deliverer
from gateway.observability import Metrics
from gateway.security import FailureThrottle, Identity
from gateway.sources import Sources
from gateway.store.runner import StoreRunner

__all__ = ["BODY", "CLOCK", "CONFIG", "DELIVERER", "IDENTITY", "METRICS", "SOURCES", "STORE", "THROTTLE", "Clock",
           "connectors_in_force", "error", "json_response"]

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", StoreRunner)
METRICS = web.AppKey("metrics", Metrics)
DELIVERER = web.AppKey("deliverer", Deliverer)
SOURCES = web.AppKey("sources", Sources)
Clock = Callable[[], float]
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
THROTTLE = web.AppKey("throttle", FailureThrottle)
IDENTITY = web.RequestKey("identity", Identity)
BODY = web.RequestKey("body", bytes)


def connectors_in_force(app: web.Application) -> Mapping[str, ConnectorConfig]:
    """The connectors as the policy in force has them (some perhaps disabled at run time)."""
    policy = app[STORE].store.policy
    if policy is None:
        return app[CONFIG].connectors()
    return cast("Mapping[str, ConnectorConfig]", policy.parties)  # the policy is built from these


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(body=orjson.dumps(value), status=status, headers=headers, content_type="application/json")


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error answer of every refusal."""
    return json_response({"error": {"code": code, "message": message}}, status, headers)
