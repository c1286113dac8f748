"""The OpenAPI 3.1 document of the gateway, built from the routes' own declarations: each room's
``ROUTES`` gives an operation's path, method, summary, parameters and answers, and its roles give
its security; what is written here is only what every operation shares."""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.http.docs import json_body, ref
from gateway.http.routes import PUBLIC, Route

__all__ = ["openapi_document"]

_SIGNED: list[dict[str, list[str]]] = [
    {"connectorSignature": [], "connectorTimestamp": [], "connectorNonce": [], "connectorKey": []}]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _security(roles: frozenset[str]) -> list[dict[str, list[str]]]:
    """Who may call an operation, as OpenAPI says it: signed, bearer, either, or anyone."""
    if PUBLIC in roles:
        return []
    return (_SIGNED if "connector" in roles else []) + (_BEARER if roles & {"auditor", "admin"} else [])


def _operation_id(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def paths(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The document's paths: one operation per route that has an entry (``doc``)."""
    out: dict[str, Any] = {}
    for declared in routes:
        if declared.doc is None:
            continue
        operation = {"summary": declared.doc["summary"], "operationId": _operation_id(declared.name),
                     "security": _security(declared.roles), **{k: v for k, v in declared.doc.items()
                                                                 if k != "summary"}}
        responses = operation["responses"] = dict(operation["responses"])
        if "400" not in responses:  # a query parameter the operation does not take is refused
            responses["400"] = json_body(ref("Error"), "A query parameter this operation does not take")
        if operation["security"] and "429" not in responses:  # failed bearer tokens are throttled
            responses["429"] = json_body(ref("Error"), "Too many failed attempts or requests; retry after "
                                         "Retry-After seconds")
        out.setdefault(declared.path, {})[declared.method.lower()] = operation
    return out


def _components() -> dict[str, Any]:
    issue = {"type": "object", "required": ["path", "code", "message"],
             "properties": {"path": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}}}
    entry = {"type": "object", "required": ["seq", "at", "event", "hash"], "properties": {
        "seq": {"type": "integer"}, "at": {"type": "string"}, "event": {"type": "string"},
        "connector": {"type": "string"}, "counterpart": {"type": "string"}, "source": {"type": "string"},
        "record_type": {"type": "string"}, "record_id": {"type": "string"}, "version": {"type": "integer"},
        "batch_id": {"type": "string"}, "rule": {"type": "string"}, "purpose": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "masked": {"type": "array", "items": {"type": "string"}},
        "digest": {"type": "string"}, "reason": {"type": "string"}, "prev_hash": {"type": "string"},
        "hash": {"type": "string"}}}
    return {
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
            "Issue": issue,
            "Record": {"type": "object", "description": "A standard record (see GET /v1/schemas/{record_type})",
                       "required": ["record_type", "record_id"], "additionalProperties": True,
                       "properties": {"record_type": {"type": "string"}, "record_id": {"type": "string"}}},
            "PushResult": {"type": "object", "required": ["batch_id", "accepted", "duplicates", "stale", "rejected",
                                                          "results"], "properties": {
                "batch_id": {"type": "string"}, "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
                "stale": {"type": "integer"}, "rejected": {"type": "integer"},
                "results": {"type": "array", "items": {"type": "object", "required": ["index", "status"],
                            "properties": {"index": {"type": "integer"},
                                           "record_id": {"type": ["string", "null"]},
                                           "status": {"enum": ["accepted", "duplicate", "stale", "rejected"]},
                                           "version": {"type": "integer"},
                                           "errors": {"type": "array", "items": ref("Issue")},
                                           "warnings": {"type": "array", "items": ref("Issue")}}}}}},
            "InboxPage": {"type": "object", "required": ["records", "next"], "properties": {
                "records": {"type": "array", "items": ref("Record")}, "next": {"type": "string"},
                "notices": {"type": "array", "items": {"type": "object"}, "description": (
                    "the sharing procedure's notices not handed over before (each once; all of them stay at "
                    "GET /v1/notices)")}}},
            "LogEntry": entry,
            "SharingRule": {"type": "object", "required": ["id", "record_types", "consumers", "purpose"],
                            "description": "A sharing rule as in [[sharing]] of the configuration (docs/gateway.md)",
                            "properties": {"id": {"type": "string"},
                                           "record_types": {"type": "array", "items": {"type": "string"}},
                                           "consumers": {"type": "array", "items": {"type": "string"}},
                                           "purpose": {"type": "string"}}},
        },
        "securitySchemes": {
            "connectorKey": {"type": "apiKey", "in": "header", "name": "X-Supex-Key"},
            "connectorTimestamp": {"type": "apiKey", "in": "header", "name": "X-Supex-Timestamp"},
            "connectorNonce": {"type": "apiKey", "in": "header", "name": "X-Supex-Nonce"},
            "connectorSignature": {"type": "apiKey", "in": "header", "name": "X-Supex-Signature",
                                   "description": "hex HMAC-SHA256 (or HMAC-SM3 with X-Supex-Algorithm: hmac-sm3) of "
                                                  "METHOD, path and query, timestamp, nonce and the body's hash"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "auditor or administrator token"},
        },
    }


@cache
def openapi_document(routes: tuple[Route, ...]) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of ``routes`` (the app's: ``app.all_routes``)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "supex — supervision data exchange gateway", "version": "1.0.0",
                 "description": "The administrative-supervision data interface (行政监管数据对接接口)."},
        "servers": [{"url": "/"}],
        "paths": paths(routes),
        "components": _components(),
    }
