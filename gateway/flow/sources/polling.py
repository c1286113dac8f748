"""Systems the gateway polls, page by page: what each answered is prepared and stored as a push
is, each page with its ``SourceMark`` (the cursor after it, or the round's watermark) in the same
transaction, so that after a crash polling resumes exactly after what is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import structlog
from yarl import URL

from connectors.exceptions import UnreachableError
from connectors.kinds import NEXT_CURSOR_HEADER
from connectors.transport import Sleep, classify, retry_after, retrying, send
from gateway.config import ConnectorConfig
from gateway.exceptions import BodyError, SourceError, SourceUnavailableError
from gateway.flow.in_force import PolicyInForce
from gateway.flow.prepare import Prepared, RecordPreparer
from gateway.flow.sources.base import Source
from gateway.observability import new_id
from gateway.store.model import SourceMark
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping, SourceFormatError
from mappings.compiler import default_rows, dotted_value
from policy import parse_duration

__all__ = ["SourcePoller"]

log = structlog.get_logger("supex.sources")
_MAX_CURSOR = 1000


class SourcePoller(Source):
    """Reads a system's API page by page, signed with the connector's secret, every page of a round.
    The answer is the system's own format. How the next page is asked for (``poll_paging``):

    - ``cursor`` — ``GET poll_url?since=C&limit=N`` from the stored cursor; the next cursor comes in
      the ``X-Supex-Next-Cursor`` header or at ``poll_next`` of a JSON answer; a page without a new
      cursor ends the round. Each page is stored with its cursor.
    - ``page`` — ``?page=1&limit=N``, ``?page=2…``; ``offset`` — ``?offset=0&limit=N``, ``?offset=N…``;
      a short or empty page, or reaching ``poll_total``, ends the round.
    - ``link`` — the next page's address at ``poll_next`` of a JSON answer (or a ``Link: rel=next``
      header), on the same host; none ends the round.

    For ``page``, ``offset`` and ``link``, ``poll_watermark_param`` and ``poll_watermark_field`` make
    reads incremental: each round asks for records after the largest value of that field seen so
    far, stored with the round's last page. A total the system reports (``poll_total``) is checked
    against the records it gave. A page that cannot be read, or a round whose records are all
    rejected, sets ``last_error``, counts in ``supex_source_failed_rounds_total`` and is logged."""

    kind = "poll"

    def __init__(self, connector: ConnectorConfig, runner: StoreRunner, *, in_force: PolicyInForce,
                 preparer: RecordPreparer, mapping: CompiledMapping | None, secret: str,
                 session: aiohttp.ClientSession, clock: Callable[[], float], sleep: Sleep = asyncio.sleep,
                 attempts: int = 3) -> None:
        super().__init__(connector, runner, in_force=in_force, preparer=preparer, mapping=mapping)
        assert connector.poll_url is not None
        self.url = URL(connector.poll_url)
        self._secret, self._session, self._clock, self._sleep, self._attempts = secret, session, clock, sleep, attempts
        self._round: dict[str, int] = {}

    @property
    def every(self) -> float:
        """Seconds between rounds."""
        return float(parse_duration(self.connector.poll_every))

    async def poll_once(self) -> int:
        """One round: every page the system has (up to ``poll_max_pages``); returns the records taken.
        ``SourceError`` if the system could not be read; what was stored before stays stored."""
        if not self.enabled:
            return 0
        self.status.last_run = self.runner.store.now()
        self._round = {"records": 0, "rejected": 0}
        try:
            taken = await (self._cursor_round() if self.connector.poll_paging == "cursor" else self._paged_round())
        except BodyError as exc:
            self._failed(f"一页无法解析 / a page cannot be read: {exc.message}")
            raise SourceError(self.status.last_error or exc.message) from exc
        except SourceError as exc:
            self._failed(str(exc))
            raise
        records, rejected = self._round["records"], self._round["rejected"]
        if records and rejected == records:
            self._failed(f"本轮 {records} 条记录全部被拒收 / all {records} records of the round were rejected: the "
                         "mapping may not fit what the system sends (see the quarantine)")
        else:
            self.status.last_error = None
        return taken

    def _failed(self, reason: str) -> None:
        self.status.last_error = reason
        self.status.failed_rounds += 1
        log.warning("poll_round_failed", connector=self.connector.id, reason=reason)

    async def _page(self, body: bytes, content_type: str) -> tuple[Prepared, int]:
        """A page's records, prepared, and their number (an empty answer is an empty page)."""
        prepared = Prepared([], []) if not body.strip() else await self._prepare(body, content_type, whole=False)
        return prepared, len(prepared.incoming) + len(prepared.rejected)

    async def _take(self, prepared: Prepared, count: int, mark: SourceMark | None) -> None:
        """Store one page (and ``mark``, where given, in the same transaction)."""
        if count or mark is not None:
            outcomes = await self._store(new_id(), prepared, mark)
            self._round["records"] += len(outcomes)
            self._round["rejected"] += sum(o.status == "rejected" for o in outcomes)

    async def _cursor_round(self) -> int:
        store, connector = self.runner.store, self.connector
        cursor = await self.runner.call(store.records.source_mark, connector.id, "cursor")
        taken = 0
        for _ in range(connector.poll_max_pages):
            query = {connector.poll_cursor: cursor} if cursor is not None else {}
            body, content_type, after, _ = await self._fetch(self._page_url(query))
            prepared, count = await self._page(body, content_type)
            if after is not None and after == cursor and count:
                raise SourceError(f"系统重复返回游标 {cursor!r} / the system answered the cursor it was given "
                                  f"({cursor!r}) with records again: it would be read forever, so the round stops")
            mark = None
            if after is not None and after != cursor:
                mark = SourceMark("cursor", after, f"poll after cursor {cursor or '(start)'}")
            await self._take(prepared, count, mark)
            taken += count
            if mark is None:
                return taken
            cursor = mark.value
        log.warning("poll_round_limit", connector=connector.id, pages=connector.poll_max_pages,
                    hint="the rest is read in the next round")
        return taken

    async def _paged_round(self) -> int:
        store, connector = self.runner.store, self.connector
        paging, limit = connector.poll_paging, connector.poll_limit
        watermark = None
        if connector.poll_watermark_param:
            watermark = await self.runner.call(store.records.source_mark, connector.id, "watermark")
        newest, total, seen = watermark, None, 0
        position = connector.poll_first_page if paging == "page" else 0
        url: URL | None = None
        for _ in range(connector.poll_max_pages):
            if url is None:
                query = {} if watermark is None else {str(connector.poll_watermark_param): watermark}
                if paging != "link":
                    query[connector.poll_page_param or paging] = str(position)
                url = self._page_url(query)
            body, content_type, after, document = await self._fetch(url)
            prepared, count = await self._page(body, content_type)
            seen += count
            if document is not None:
                total = self._total(document) if total is None else total
                newest = _latest(newest, self._watermarks(document))
            next_url = self._next_link(url, after) if paging == "link" else None
            last = (count == 0 or (paging != "link" and count < limit)
                    or (total is not None and seen >= total) or (paging == "link" and next_url is None))
            mark = None
            if last and newest is not None and newest != watermark:
                mark = SourceMark("watermark", newest, f"poll up to {connector.poll_watermark_field} {newest}")
            await self._take(prepared, count, mark)
            if last:
                if total is not None and seen != total:
                    raise SourceError(f"系统报告共 {total} 条，实际给出 {seen} 条 / the system reported a total of "
                                      f"{total} records ({connector.poll_total}) but its pages held {seen}")
                return seen
            position += 1 if paging == "page" else count
            url = next_url
        log.warning("poll_round_limit", connector=connector.id, pages=connector.poll_max_pages,
                    hint="the rest is read in the next round")
        return seen

    def _page_url(self, query: dict[str, str]) -> URL:
        return self.url.update_query({**query, self.connector.poll_size_param: str(self.connector.poll_limit)})

    def _rows(self, document: Any) -> list[Any]:
        """A JSON page's records, where the connector's mapping finds them (the watermark's values)."""
        if self.mapping is None or self.mapping.format != "json":
            return default_rows(document)
        try:
            return self.mapping.records_of(document, "page")
        except SourceFormatError:
            return []  # the preparer refuses the page, saying why

    def _watermarks(self, document: Any) -> list[Any]:
        field_ = self.connector.poll_watermark_field
        if field_ is None:
            return []
        return [v for v in (dotted_value(row, field_) for row in self._rows(document)) if v is not None]

    def _total(self, document: Any) -> int | None:
        path = self.connector.poll_total
        if path is None:
            return None
        value = dotted_value(document, path)
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise SourceError(f"系统未给出总数 / {path} of the page is {value!r}, not a count of records")
        return int(value)

    def _next_link(self, url: URL, after: str | None) -> URL | None:
        if not after:
            return None
        link = url.join(URL(after))
        if (link.scheme, link.host, link.port) != (self.url.scheme, self.url.host, self.url.port):
            raise SourceError(f"下一页地址不在同一主机 / the next page's address {after!r} is not on {self.url.host}: "
                              "the gateway does not send its signature elsewhere")
        return link

    async def _fetch(self, url: URL) -> tuple[bytes, str, str | None, Any]:
        try:
            async for attempt in retrying(self._attempts, sleep=self._sleep, initial=1,
                                          on=(SourceUnavailableError, UnreachableError)):
                with attempt:
                    return await self._get(url)
        except (SourceUnavailableError, UnreachableError) as exc:
            raise SourceError(f"{exc} (after {self._attempts} attempts)") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, url: URL) -> tuple[bytes, str, str | None, Any]:
        """One page: its body, content type, the next cursor or link where the answer gives one, and
        the answer as JSON where it is JSON."""
        answer = await send(self._session, "GET", url, key=self.connector.id, secret=self._secret,
                            timeout=self.connector.poll_timeout_seconds, clock=self._clock)
        body, content_type = answer.body, answer.headers.get("Content-Type", "")
        verdict = classify(answer.status)
        if verdict == "retry":
            raise SourceUnavailableError(f"系统暂不可用 / {self.url} answered {answer.status}", retry_after(answer))
        if verdict == "fatal":
            said = body[:200].decode("utf-8", errors="replace").strip()
            raise SourceError(f"系统拒绝 / {self.url} answered {answer.status}" + (f": {said}" if said else ""))
        after, link = answer.headers.get(NEXT_CURSOR_HEADER), answer.links.get("next")
        main = answer.content_type
        if main == "text/html" or body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            raise SourceError(f"系统返回了网页而不是数据 / {self.url} answered an HTML page, not records "
                            "(a login or error page?)")
        document = _json_document(body) if main == "application/json" else None
        if after is None and document is not None:
            found = dotted_value(document, self.connector.poll_next)
            after = None if found is None else str(found)
        if after is None and link is not None:
            after = str(link.get("url"))
        if after is not None and (not after or len(after) > _MAX_CURSOR):
            raise SourceError(f"游标无效 / {self.url} gave an unusable cursor (empty or over {_MAX_CURSOR} characters)")
        return body, content_type, after, document


def _json_document(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the preparer says what is wrong with it


def _latest(current: str | None, values: list[Any]) -> str | None:
    """The largest of a watermark and a page's values: as numbers where all are (epoch times), else
    as text (``2024-03-05 10:00:00`` orders as text)."""
    found = [str(v) for v in values if not isinstance(v, bool)] + ([current] if current is not None else [])
    if not found:
        return None
    if all(v.lstrip("-").replace(".", "", 1).isdigit() for v in found):
        return max(found, key=float)
    return max(found)
