"""The OpenAPI 3.1 document of the gateway, built from data (tested against the running app)."""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Malformed request", 401: "Not authenticated", 403: "Wrong role", 404: "Not found",
            408: "The body did not arrive within read_timeout_seconds", 413: "Body or batch too large",
            415: "Unsupported content type", 429: "Rate or frequency limit",
            503: "Store unavailable; retry after Retry-After seconds"}
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


_SIGNED: list[dict[str, list[str]]] = [
    {"connectorSignature": [], "connectorTimestamp": [], "connectorNonce": [], "connectorKey": []}]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_ANY = [*_SIGNED, *_BEARER]
_CURSOR = {"name": "after", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
_LIMIT = {"name": "limit", "in": "query", "required": False,
          "schema": {"type": "string", "pattern": "^[0-9]+$"}, "description": "1 to 1000"}
_LOG_FILTERS = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
                 **({"description": "entries the connector took part in, on either side (connector or counterpart)"}
                    if n == "connector" else {})}
                for n in ("from", "to", "connector", "counterpart", "record_type", "record_id", "event", "rule")]


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
                                           "errors": {"type": "array", "items": _ref("Issue")},
                                           "warnings": {"type": "array", "items": _ref("Issue")}}}}}},
            "InboxPage": {"type": "object", "required": ["records", "next"], "properties": {
                "records": {"type": "array", "items": _ref("Record")}, "next": {"type": "string"}}},
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


def _paths() -> dict[str, Any]:
    body_types: dict[str, Any] = {t: {"schema": {"type": "string"}}
                                  for t in ("application/x-ndjson", "application/xml", "text/csv")}
    body_types["application/json"] = {"schema": {"oneOf": [
        {"type": "array", "items": _ref("Record")},
        {"type": "object", "required": ["records"], "properties": {"records": {"type": "array",
                                                                               "items": _ref("Record")}}},
        _ref("Record")]}}
    return {
        "/v1/records": {"post": {
            "summary": "Push a batch of records", "operationId": "push", "security": _SIGNED,
            "requestBody": {"required": True, "content": body_types},
            "responses": {"200": _json(_ref("PushResult"), "Per-record results; everything accepted is durable"),
                          **_errors(400, 401, 403, 408, 413, 415, 429, 503)}}},
        "/v1/inbox": {"get": {
            "summary": "Records shared with the caller, oldest first", "operationId": "inbox", "security": _SIGNED,
            "parameters": [_CURSOR, _LIMIT],
            "responses": {"200": _json(_ref("InboxPage"), "A page and the cursor after it"),
                          **_errors(400, 401, 403, 429, 503)}}},
        "/v1/inbox/ack": {"post": {
            "summary": "Acknowledge everything up to a cursor", "operationId": "ack", "security": _SIGNED,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["cursor"],
                "properties": {"cursor": {"type": ["string", "integer"]}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["acked"],
                                        "properties": {"acked": {"type": "string"}}}, "The acknowledged cursor"),
                          **_errors(400, 401, 403, 503)}}},
        "/v1/rejections": {"get": {
            "summary": "The caller's quarantined records", "operationId": "rejections", "security": _SIGNED,
            "parameters": [_CURSOR, _LIMIT],
            "responses": {"200": _json({"type": "object", "required": ["rejections", "next"], "properties": {
                "rejections": {"type": "array", "items": {"type": "object"}}, "next": {"type": "string"}}},
                "Rejected records with their errors"), **_errors(400, 401, 403)}}},
        "/v1/records/{record_id}/trail": {"get": {
            "summary": "Exchange-log events of one of the caller's records", "operationId": "trail",
            "security": _SIGNED,
            "parameters": [{"name": "record_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object", "required": ["record_id", "events"], "properties": {
                "record_id": {"type": "string"}, "events": {"type": "array", "items": _ref("LogEntry")}}},
                "The record's events"), **_errors(401, 403, 404)}}},
        "/v1/schemas": {"get": {
            "summary": "The record types of the standard interface", "operationId": "schemas", "security": _ANY,
            "responses": {"200": _json({"type": "object", "required": ["version", "types"], "properties": {
                "version": {"type": "string"}, "types": {"type": "array", "items": {"type": "object"}}}},
                "The record types"), **_errors(401)}}},
        "/v1/schemas/{record_type}": {"get": {
            "summary": "The JSON Schema of a record type", "operationId": "schema", "security": _ANY,
            "parameters": [{"name": "record_type", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object"}, "A JSON Schema 2020-12 document"), **_errors(401, 404)}}},
        "/v1/audit/events": {"get": {
            "summary": "Exchange-log entries by filter", "operationId": "auditEvents", "security": _BEARER,
            "parameters": [_CURSOR, _LIMIT, *_LOG_FILTERS],
            "responses": {"200": _json({"type": "object", "required": ["events", "next"], "properties": {
                "events": {"type": "array", "items": _ref("LogEntry")}, "next": {"type": "string"}}},
                "Entries, oldest first"), **_errors(400, 401, 403)}}},
        "/v1/audit/verify": {"get": {
            "summary": "Verify the exchange log's hash chain", "operationId": "auditVerify", "security": _BEARER,
            "responses": {"200": _json({"type": "object", "required": ["ok", "entries", "first_bad_seq"],
                                        "properties": {"ok": {"type": "boolean"}, "entries": {"type": "integer"},
                                                       "first_bad_seq": {"type": ["integer", "null"]},
                                                       "reason": {"type": ["string", "null"]}}},
                                       "The verdict"), **_errors(401, 403)}}},
        "/v1/audit/export": {"get": {
            "summary": "The exchange log as NDJSON", "operationId": "auditExport", "security": _BEARER,
            "parameters": [_CURSOR, *_LOG_FILTERS],
            "responses": {"200": {"description": "One entry a line",
                                  "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 403)}}},
        **_admin_paths(),
        "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz", "security": [], "responses": {
            "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "Alive")}}},
        "/readyz": {"get": {"summary": "Readiness: the store answers", "operationId": "readyz", "security": [],
                            "responses": {
                                "200": _json({"type": "object", "properties": {"status": {"type": "string"}}}, "Ready"),
                                "503": _json({"type": "object", "properties": {"status": {"type": "string"}}},
                                             "Not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "security": [],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "security": [],
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")}}},
    }


def _admin_paths() -> dict[str, Any]:
    obj = {"type": "object"}
    rule_body = {"required": True, "content": {"application/json": {"schema": _ref("SharingRule")}}}
    rule_id = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string"}}
    changed = _json({"type": "object", "required": ["rule", "change"], "properties": {
        "rule": _ref("SharingRule"), "change": {"type": "string"}}}, "The rule as kept")
    return {
        "/v1/admin/connectors": {"get": {
            "summary": "The registered connectors (no secrets)", "operationId": "adminConnectors", "security": _BEARER,
            "responses": {"200": _json({"type": "object", "required": ["connectors"], "properties": {
                "connectors": {"type": "array", "items": obj}}}, "The connectors"), **_errors(401, 403)}}},
        **{f"/v1/admin/connectors/{{connector_id}}/{action}": {"post": {
            "summary": f"{action.capitalize()} a connector at run time (logged)",
            "operationId": f"adminConnector{action.capitalize()}", "security": _BEARER,
            "parameters": [{"name": "connector_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object", "required": ["connector", "enabled"], "properties": {
                "connector": {"type": "string"}, "enabled": {"type": "boolean"}}}, "The connector's state"),
                **_errors(401, 403, 404)}}} for action in ("disable", "enable")},
        "/v1/admin/sharing": {
            "get": {"summary": "The sharing rules in force", "operationId": "adminRules", "security": _BEARER,
                    "responses": {"200": _json({"type": "object", "required": ["rules"], "properties": {
                        "rules": {"type": "array", "items": _ref("SharingRule")}}}, "The rules"),
                        **_errors(401, 403)}},
            "post": {"summary": "Add a sharing rule (logged)", "operationId": "adminRuleAdd", "security": _BEARER,
                     "requestBody": rule_body,
                     "responses": {"201": changed, **_errors(400, 401, 403), "409": _json(_ref("Error"), "Exists")}}},
        "/v1/admin/sharing/{rule_id}": {"put": {
            "summary": "Replace a sharing rule (logged)", "operationId": "adminRuleUpdate", "security": _BEARER,
            "parameters": [rule_id], "requestBody": rule_body,
            "responses": {"200": changed, **_errors(400, 401, 403, 404)}}},
        "/v1/admin/sharing/{rule_id}/disable": {"post": {
            "summary": "Disable a sharing rule (logged)", "operationId": "adminRuleDisable", "security": _BEARER,
            "parameters": [rule_id], "responses": {"200": changed, **_errors(401, 403, 404)}}},
        "/v1/admin/policy/explain": {"post": {
            "summary": "Whether and why a record reaches a consumer, and what it would receive",
            "operationId": "adminExplain", "security": _BEARER,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["record", "to"],
                "properties": {"record": obj, "to": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["consumer", "routed", "allowed", "reason"],
                                        "properties": {"routed": {"type": "boolean"}, "allowed": {"type": "boolean"},
                                                       "reason": {"type": "string"}}}, "The explanation"),
                          **_errors(400, 401, 403)}}},
        "/v1/admin/deadletters": {"get": {
            "summary": "Deliveries given up on", "operationId": "adminDeadLetters", "security": _BEARER,
            "parameters": [{"name": "consumer", "in": "query", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": _json({"type": "object", "required": ["dead_letters"], "properties": {
                "dead_letters": {"type": "array", "items": obj}}}, "Dead letters"), **_errors(401, 403)}}},
        "/v1/admin/deadletters/replay": {"post": {
            "summary": "Send dead letters again (logged)", "operationId": "adminReplay", "security": _BEARER,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"consumer": {"type": "string"},
                                                 "seqs": {"type": "array", "items": {"type": "integer"}}}}}}},
            "responses": {"200": _json({"type": "object", "required": ["replayed"], "properties": {
                "replayed": {"type": "integer"}}}, "How many"), **_errors(400, 401, 403)}}},
    }


@cache
def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "supex — supervision data exchange gateway", "version": "1.0.0",
                 "description": "The administrative-supervision data interface (行政监管数据对接接口)."},
        "servers": [{"url": "/"}],
        "paths": _with_throttling(_paths()),
        "components": _components(),
    }


def _with_throttling(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a credential may answer 429: failed bearer tokens are throttled."""
    for operations in paths.values():
        for operation in operations.values():
            if operation.get("security") != [] and "429" not in operation["responses"]:
                operation["responses"]["429"] = _json(_ref("Error"), "Too many failed attempts or requests; retry "
                                                      "after Retry-After seconds")
    return paths
