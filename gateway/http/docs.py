"""Pieces the rooms' OpenAPI entries are written with: shared schemas, parameters and errors."""

from __future__ import annotations

from typing import Any

from mappings.media import READ_AS

__all__ = ["CURSOR", "LIMIT", "LOG_FILTERS", "errors", "json_body", "ref"]


def ref(name: str) -> dict[str, str]:
    """A reference to one of the document's component schemas."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A JSON answer (or body) of ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    """The error answers of ``statuses``."""
    text = {400: "Malformed request", 401: "Not authenticated", 403: "Wrong role", 404: "Not found",
            408: "The body did not arrive within read_timeout_seconds", 409: "Exists",
            410: "Archived and pruned from the store: the log's archive holds it", 413: "Body or batch too large",
            415: "Unsupported content type", 429: "Rate or frequency limit",
            503: "Store unavailable; retry after Retry-After seconds"}
    return {str(s): json_body(ref("Error"), text[s]) for s in statuses}


def path_param(name: str) -> dict[str, Any]:
    """A parameter in the path."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def obj(required: list[str], **properties: Any) -> dict[str, Any]:
    """An object schema."""
    return {"type": "object", "required": required, "properties": properties}


CURSOR = {"name": "after", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 0, "maximum": 2**62},
          "description": "a cursor: the `next` of an earlier page (records after it come next)"}
LIMIT = {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
         "description": "at most this many items a page, 1 to 1000 (default 100)"}
LOG_FILTERS = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
                **({"description": "entries the connector took part in, on either side (connector or counterpart)"}
                   if n == "connector" else {})}
               for n in ("from", "to", "connector", "counterpart", "record_type", "record_id", "event", "rule")]
# what a push may carry: standard records as JSON, or a connector's own format
PUSH_BODY: dict[str, Any] = {
    **{t: {"schema": {"type": "string"}} for t, kind in READ_AS.items() if kind != "json"},
    "application/json": {"schema": {"oneOf": [
        {"type": "array", "items": ref("Record")},
        obj(["records"], records={"type": "array", "items": ref("Record")}),
        ref("Record")]}},
}
