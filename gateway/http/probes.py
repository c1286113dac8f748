"""What anyone may ask: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.http.context import METRICS, OPENAPI, STORE, WARNINGS, json_response
from gateway.http.docs import json_body
from gateway.http.routes import PUBLIC, Route, route

__all__ = ["ROUTES"]


async def healthz(request: web.Request) -> web.Response:
    """Liveness, and the settings an operator chose that leave data less safe (if any)."""
    warnings = request.app[WARNINGS]
    return json_response({"status": "ok", **({"warnings": warnings} if warnings else {})})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers."""
    store = request.app[STORE]
    try:
        ready = await store.call(store.store.ping)
    except Exception:  # noqa: BLE001 - any failure to answer means not ready
        ready = False
    return json_response({"status": "ready" if ready else "unavailable"}, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    app = request.app
    store = app[STORE]
    app[METRICS].log_entries.set((await store.call(store.store.log.head))[0])
    return web.Response(body=generate_latest(app[METRICS].registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document, built from the app's routes."""
    return json_response(request.app[OPENAPI])


_STATUS: dict[str, Any] = {"type": "object", "properties": {"status": {"type": "string"}}}
ROUTES: list[Route] = [
    route("GET", "/healthz", healthz, name="healthz", roles={PUBLIC}, doc={
        "summary": "Liveness", "responses": {"200": json_body(_STATUS, "Alive")}}),
    route("GET", "/readyz", readyz, name="readyz", roles={PUBLIC}, doc={
        "summary": "Readiness: the store answers",
        "responses": {"200": json_body(_STATUS, "Ready"), "503": json_body(_STATUS, "Not ready")}}),
    route("GET", "/metrics", metrics, name="metrics", roles={PUBLIC}, doc={
        "summary": "Prometheus metrics", "responses": {"200": {
            "description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}),
    route("GET", "/openapi.json", openapi, name="openapi", roles={PUBLIC}, doc={
        "summary": "This document", "responses": {"200": json_body({"type": "object"}, "OpenAPI 3.1")}}),
]
