"""A request's query parameters and JSON bodies read strictly: a value that is not what its
endpoint takes is refused (``ParameterError``, 400 ``bad_parameter``) naming it, never half-read."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.exceptions import ParameterError
from gateway.http.context import BODY, CONFIG, STORE
from gateway.store.model import LogFilter

__all__ = ["LOG_FILTER_PARAMS", "cursor_param", "int_param", "json_object", "log_filter", "text_param"]

# the log filters of the API by their parameter names (the time span is ``from`` … ``to``)
LOG_FILTER_PARAMS = {"from": "since", "to": "until", "connector": "connector", "counterpart": "counterpart",
                     "record_type": "record_type", "record_id": "record_id", "event": "event", "rule": "rule"}


def int_param(request: web.Request, name: str, default: int, low: int = 0, high: int = 2**62) -> int:
    """A whole-number query parameter from ``low`` to ``high``, in ASCII digits (``default`` if absent)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        raise ParameterError(f"参数 {name} 应为 {low} 到 {high} 的整数 / the {name} parameter must be a whole number "
                             f"from {low} to {high}, in ASCII digits")
    return int(raw)


def cursor_param(request: web.Request, name: str) -> int | None:
    """A cursor query parameter, ``None`` if absent."""
    return int_param(request, name, 0) if request.query.get(name) else None


def text_param(request: web.Request, name: str, limit: int = 200) -> str | None:
    """A text query parameter: at most ``limit`` characters, none of them controls or broken UTF-8."""
    raw = request.query.get(name)
    if raw is not None and (len(raw) > limit or not raw.isprintable() or "\ufffd" in raw
                            or any("\ud800" <= c <= "\udfff" for c in raw)):
        raise ParameterError(f"参数 {name} 应为不超过 {limit} 个可打印字符的 UTF-8 文本 / the {name} parameter must be "
                             f"at most {limit} printable characters of valid UTF-8")
    return raw


async def log_filter(request: web.Request) -> LogFilter:
    """The exchange-log filter of an audit request's parameters, checked (400 ``bad_parameter``
    for one that cannot be read or names what does not exist: it would quietly match nothing)."""
    values = {field: text_param(request, name) for name, field in LOG_FILTER_PARAMS.items()}
    runner = request.app[STORE]
    known = runner.store.log.knows(request.app[CONFIG].connectors())
    try:
        return await runner.call(LogFilter.of, values, is_connector=known,
                                 names={field: name for name, field in LOG_FILTER_PARAMS.items()})
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc


def json_object(request: web.Request) -> dict[str, Any] | None:
    """The request body as a JSON object (``None``: not one)."""
    try:
        value = orjson.loads(request[BODY] or b"null")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
