"""From a request body to records ready for the store: parse, map, validate, normalise.

Whole-request problems raise ``BodyError`` with the HTTP status to answer (nothing is stored);
problems of single records become quarantined records with their errors. Large batches are
prepared in worker processes (``PreparePool``), beside the event loop, so that validation of one
batch overlaps the durable commit of another on a second core; the workers hand back rows ready
for the store: payload bytes and a few strings per record.
"""

from __future__ import annotations

import asyncio
import gc
import io
import multiprocessing
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from lxml import etree

from gateway.config import Config, ConnectorConfig, resolve_mapping
from gateway.exceptions import BodyError
from gateway.merkle import hash_function
from gateway.store.model import Incoming, Quarantined
from mappings import CompiledMapping, SourceFormatError, map_record, read_source
from mappings.formats import SourceItem
from mappings.media import READ_AS
from schemas import Issue, Validator, Verdict, load_schema_set
from schemas.issues import issue

__all__ = ["INLINE_BELOW", "PreparePool", "Prepared", "RecordPreparer", "content_kind"]

# what a record's digest leaves out: the gateway's own fields, and the version stored beside it
_NOT_CONTENT = frozenset({"source", "received_at", "seq", "digest", "version"})


def content_kind(content_type: str) -> str:
    """``json``, ``ndjson``, ``xml``, ``csv`` or ``xlsx`` (any workbook) from a Content-Type header; else 415."""
    main = content_type.split(";", 1)[0].strip().lower()
    if main not in READ_AS:
        raise BodyError(415, "unsupported_media_type",
                        f"不支持的内容类型 / unsupported content type {main or '(none)'!r}: use application/json, "
                        "application/x-ndjson, or the connector's own XML, CSV or spreadsheet")
    return READ_AS[main]


def _json_items(body: bytes, kind: str) -> list[Any]:
    if kind == "ndjson":
        items = []
        for number, line in enumerate(body.split(b"\n"), 1):
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise BodyError(400, "malformed", f"第 {number} 行不是有效的 JSON / line {number} is not valid "
                                    f"JSON: {exc}") from exc
        return items
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, "malformed", f"请求体不是有效的 JSON / the body is not valid JSON: {exc}") from exc
    if isinstance(value, dict) and isinstance(value.get("records"), list):
        return list(value["records"])
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise BodyError(400, "malformed", "请求体应为 JSON 数组或对象 / the body must be a JSON array or object")


def _source_items(body: bytes, kind: str, mapping: CompiledMapping | None,
                  own: CompiledMapping | None) -> Iterator[SourceItem]:
    """The body's records, read one at a time (XML elements are freed after use): through the
    connector's mapping (``own``) where the body is in its format (``mapping``), else as standard
    JSON records."""
    if mapping is not None:
        return _refusing_whole(read_source(mapping, io.BytesIO(body)))
    if kind in ("json", "ndjson"):
        return (SourceItem(n, f"record {n}", value) for n, value in enumerate(_json_items(body, kind)))
    if own is None:
        raise BodyError(415, "unsupported_media_type",
                        f"此连接器没有映射，只报送 JSON 标准记录 / this connector has no mapping: it pushes standard "
                        f"records as JSON or NDJSON, not {kind.upper()} (give it a mapping to push its own format)")
    raise BodyError(415, "unsupported_media_type",
                    f"此连接器不以 {kind.upper()} 报送 / this connector does not push {kind.upper()}: "
                    f"its mapping reads {own.format.upper()}")


def _refusing_whole(items: Iterator[SourceItem]) -> Iterator[SourceItem]:
    """``items``, with a file the mapping cannot read refused as a whole body."""
    try:
        yield from items
    except SourceFormatError as exc:
        raise BodyError(400, "malformed", f"无法按映射读取 / cannot be read by the connector's mapping: {exc}") \
            from None


def _whole_body_error(item: SourceItem, kind: str) -> bool:
    """XML cannot be read past an error, and a JSON body is valid JSON or refused whole; a bad row of
    a CSV file or a sheet is that row's problem only."""
    return item.error is not None and kind in ("xml", "json", "ndjson")


@dataclass(frozen=True)
class Prepared:
    """A batch split into records to store and records to quarantine."""

    incoming: list[Incoming]
    rejected: list[Quarantined]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str | None:
    """A rejected record's id or type as it may be kept and logged: a string, its control characters
    written as ``\\uXXXX`` (a database's text cannot hold NUL), at most 200 characters; else ``None``."""
    if not isinstance(value, str):
        return None
    return _CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", value)[:200]


class RecordPreparer:
    """Turns a connector's request body into ``Prepared`` records; pure apart from the clock's time."""

    def __init__(self, *, log_hash: str, max_records: int, extra_regions: dict[str, str] | None = None) -> None:
        self.log_hash = log_hash
        self.hash = hash_function(log_hash)
        self.max_records = max_records
        self.validators = {policy: Validator(identifiers=policy, extra_regions=extra_regions)
                           for policy in ("strict", "lenient")}
        self.defaults = {name: info.sharing for name, info in load_schema_set().types.items()}

    def prepare(self, connector: ConnectorConfig, mapping: CompiledMapping | None, body: bytes, content_type: str,
                received_at: str, *, whole: bool = False, max_records: int | None = None) -> Prepared:
        """Parse, map, validate and normalise every record of one request. With ``whole`` (a file
        taken as a unit) any unreadable part refuses the whole body: it may be truncated."""
        kind = content_kind(content_type)
        max_records = max_records or self.max_records
        source_format = "json" if kind == "ndjson" else kind
        use_mapping = mapping if mapping is not None and mapping.format == source_format else None
        validator = self.validators[connector.identifiers]
        source = {"connector": connector.id, "department_code": connector.department_code,
                  "region_code": connector.region_code}
        incoming, rejected = [], []
        for count, item in enumerate(_source_items(body, kind, use_mapping, mapping), 1):
            if count > max_records:
                raise BodyError(413, "too_many_records", f"一批最多 {max_records} 条记录 / at most "
                                f"{max_records} records a batch")
            if item.error is not None and (whole or _whole_body_error(item, kind)):
                raise BodyError(400, "malformed", f"无法解析 / cannot be parsed: {item.where}: {item.error}")
            record, verdict = self._check(item, use_mapping, validator, connector)
            if not verdict.ok:
                rejected.append(self._quarantined(item, record, verdict))
                continue
            assert record is not None
            sharing = record.get("sharing") or self.defaults[record["record_type"]]
            grade = record.get("grade") or "general"
            # the digest covers the record's content as pushed, sharing and grade filled in, as
            # canonical JSON (sorted keys); the record is stored in its producer's order of fields,
            # with the gateway's own added
            own = record if _NOT_CONTENT.isdisjoint(record) else \
                {k: v for k, v in record.items() if k not in _NOT_CONTENT}
            content = {**own, "sharing": sharing, "grade": grade}
            digest = self.hash(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hex()
            occurred = record.get("occurred_at")
            incoming.append(Incoming(  # by position, in the fields' order: keywords cost more, once a record
                item.index, record["record_id"], record["record_type"], record["op"], record.get("version"),
                record["region_code"], sharing, grade, digest,
                orjson.dumps({**content, "source": source, "received_at": received_at, "digest": digest}),
                tuple(w.as_dict() for w in verdict.warnings) if verdict.warnings else (),
                occurred if isinstance(occurred, str) else None, bool(record.get("corrects"))))
        return Prepared(incoming, rejected)

    @staticmethod
    def _check(item: SourceItem, mapping: CompiledMapping | None, validator: Validator,
               connector: ConnectorConfig) -> tuple[dict[str, Any] | None, Verdict]:
        if item.error is not None:
            return None, Verdict((issue("", "malformed", detail=item.error),))
        if mapping is not None:
            record, verdict = map_record(mapping, validator, item.value)
        else:
            record, verdict = item.value, validator.validate(item.value)
        if isinstance(record, dict) and isinstance(record.get("record_type"), str) \
                and record["record_type"] not in connector.produces:
            refusal = issue("/record_type", "not_permitted", value=record["record_type"])
            verdict = Verdict((refusal, *verdict.errors), verdict.warnings)
        return (record if isinstance(record, dict) else None), verdict

    @staticmethod
    def _quarantined(item: SourceItem, record: dict[str, Any] | None, verdict: Verdict) -> Quarantined:
        value = record if record is not None else item.value
        record_id = value.get("record_id") if isinstance(value, dict) else None
        record_type = value.get("record_type") if isinstance(value, dict) else None
        if isinstance(item.value, dict | list | str | int | float | bool) or item.value is None:
            payload = orjson.dumps(item.value)
        else:  # an XML element: keep the source as it came
            payload = etree.tostring(item.value, encoding="utf-8")
        errors: list[Issue] = list(verdict.errors)
        return Quarantined(item.index, printable(record_id), printable(record_type), [e.as_dict() for e in errors],
                           payload)


# ---- in worker processes ------------------------------------------------------------------------

INLINE_BELOW = 64 * 1024  # smaller bodies are prepared in place: a process hop would cost more

_state: tuple[RecordPreparer, dict[str, ConnectorConfig], dict[str, CompiledMapping]] | None = None


def _start(connectors: list[ConnectorConfig], base_dir: Path, log_hash: str, max_records: int,
           extra_regions: dict[str, str]) -> None:
    global _state  # noqa: PLW0603 - one worker process, one preparer: its whole reason to exist
    mappings = {c.id: resolve_mapping(name, base_dir) for c in connectors if (name := c.mapping_name)}
    preparer = RecordPreparer(log_hash=log_hash, max_records=max_records, extra_regions=extra_regions)
    _state = (preparer, {c.id: c for c in connectors}, mappings)
    # as in the serving process: what start-up built (schemas, code tables) kept out of the
    # collector's way, and the young generation collected less often while a batch is prepared
    gc.set_threshold(50_000, 50, 1000)
    gc.freeze()


def _prepare(connector_id: str, body: bytes, content_type: str, received_at: str) -> Prepared:
    assert _state is not None, "worker not started"
    preparer, connectors, mappings = _state
    return preparer.prepare(connectors[connector_id], mappings.get(connector_id), body, content_type, received_at)


def _ready() -> bool:
    return _state is not None


class PreparePool:
    """Worker processes that each hold a preparer for every connector."""

    def __init__(self, config: Config, processes: int) -> None:
        self._pool = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
            initargs=(list(config.connector), config.base_dir, config.gateway.log_hash, config.gateway.max_records,
                      config.gateway.extra_region_codes),
        )

    async def warm_up(self) -> None:
        """Start the workers now rather than on the first large batch."""
        await asyncio.get_running_loop().run_in_executor(self._pool, _ready)

    async def prepare(self, connector_id: str, body: bytes, content_type: str, received_at: str) -> Prepared:
        """Prepare one body in a worker; ``BodyError`` comes back as raised there."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _prepare, connector_id, body, content_type, received_at)

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
