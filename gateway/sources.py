"""Sources the gateway fetches itself: systems it polls, and folders where systems drop files.

Both hand what they fetch to the same preparer and store as a push does, and store with each batch
a ``SourceMark`` in the same transaction — the cursor after a polled page, the digest of a file —
so that after a crash a source resumes exactly after what is stored: nothing skipped, nothing
taken twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Any

import aiohttp
import orjson
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from yarl import URL

from connectors.kinds import NEXT_CURSOR_HEADER
from connectors.signing import signature_headers
from gateway.config import Config, ConnectorConfig
from gateway.exceptions import ConfigError, SourceError, SourceUnavailableError
from gateway.exchange_log import LogEntry
from gateway.ingest import FILE_TYPES, BodyError, Prepared, RecordPreparer
from gateway.observability import new_id
from gateway.store.model import IngestOutcome, SourceMark, tally
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping, SourceFormatError
from mappings.compiler import default_rows, dotted_value
from policy import parse_duration

__all__ = ["FileDrop", "SourcePoller", "SourceStatus", "Sources"]

log = structlog.get_logger("supex.sources")

Sleep = Callable[[float], Awaitable[None]]
_UNFINISHED = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".swp")  # still being written
_MAX_FILE_RECORDS = 1_000_000
_MAX_CURSOR = 1000
_LONGEST_NAME = 200  # bytes of a moved file's name, leaving room for an id and ".report.json" (255 at most)


@dataclass
class SourceStatus:
    """What a source last did, for the admin API: when, how much, and what went wrong."""

    kind: str  # poll | file
    last_run: str | None = None
    last_error: str | None = None
    records: int = 0  # records taken since the gateway started
    rejected: int = 0  # of those, the records rejected (quarantined)
    failed_rounds: int = 0  # rounds that failed (a page unreadable, the system unreachable, all rejected)
    standby: bool = False  # another gateway on the database reads this source now
    files: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON."""
        out = asdict(self)
        if self.kind != "file":
            del out["files"]
        return out


class _Source:
    """What polling and file dropping share: the connector, its mapping, the preparer, the store."""

    kind = ""

    def __init__(self, connector: ConnectorConfig, runner: StoreRunner, preparer: RecordPreparer,
                 mapping: CompiledMapping | None) -> None:
        self.connector, self.runner, self.preparer, self.mapping = connector, runner, preparer, mapping
        self.status = SourceStatus(self.kind)

    @property
    def enabled(self) -> bool:
        """Whether the connector is in force (an admin may disable it at run time: its source pauses)."""
        policy = self.runner.store.policy
        return policy is None or policy.parties[self.connector.id].enabled

    async def _prepare(self, body: bytes, content_type: str, *, whole: bool) -> Prepared:
        received_at = self.runner.store.now()
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.preparer.prepare(
            self.connector, self.mapping, body, content_type, received_at, whole=whole,
            max_records=_MAX_FILE_RECORDS if whole else None))

    async def _store(self, batch_id: str, prepared: Prepared, mark: SourceMark | None) -> list[IngestOutcome]:
        outcomes = await self.runner.ingest(self.connector.id, batch_id, prepared.incoming, prepared.rejected, mark)
        self.status.records += len(outcomes)
        self.status.rejected += sum(o.status == "rejected" for o in outcomes)
        return outcomes


# ---- polling --------------------------------------------------------------------------------------


class SourcePoller(_Source):
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

    def __init__(self, connector: ConnectorConfig, runner: StoreRunner, preparer: RecordPreparer,
                 mapping: CompiledMapping | None, secret: str, *, session: aiohttp.ClientSession,
                 clock: Callable[[], float], sleep: Sleep = asyncio.sleep, attempts: int = 3) -> None:
        super().__init__(connector, runner, preparer, mapping)
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
        except (BodyError, SourceError) as exc:
            reason = exc.message if isinstance(exc, BodyError) else str(exc)
            self._failed(reason if isinstance(exc, SourceError) else
                         f"一页无法解析 / a page cannot be read: {reason}")
            raise SourceError(self.status.last_error or reason) from None
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
        cursor = await self.runner.call(store.source_mark, connector.id, "cursor")
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
            watermark = await self.runner.call(store.source_mark, connector.id, "watermark")
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
        retrying = AsyncRetrying(stop=stop_after_attempt(self._attempts), sleep=self._sleep, reraise=True,
                                 wait=wait_exponential_jitter(initial=1, max=30),
                                 retry=retry_if_exception_type(SourceUnavailableError))
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._get(url)
        except SourceUnavailableError as exc:
            raise SourceError(f"{exc} (after {self._attempts} attempts)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, url: URL) -> tuple[bytes, str, str | None, Any]:
        """One page: its body, content type, the next cursor or link where the answer gives one, and
        the answer as JSON where it is JSON."""
        headers = signature_headers(self.connector.id, self._secret, "GET", url.raw_path_qs, b"", now=self._clock)
        timeout = aiohttp.ClientTimeout(total=self.connector.poll_timeout_seconds)
        try:
            async with self._session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as answer:
                body = await answer.read()
                status, content_type = answer.status, answer.headers.get("Content-Type", "")
                after = answer.headers.get(NEXT_CURSOR_HEADER)
                link = answer.links.get("next")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SourceUnavailableError(f"无法读取 {self.url} / cannot read {self.url}: "
                                         f"{type(exc).__name__} {exc}".strip()) from None
        if status in (429, 500, 502, 503, 504):
            raise SourceUnavailableError(f"系统暂不可用 / {self.url} answered {status}")
        if status != 200:
            said = body[:200].decode("utf-8", errors="replace").strip()
            raise SourceError(f"系统拒绝 / {self.url} answered {status}" + (f": {said}" if said else ""))
        main = content_type.split(";", 1)[0].strip().lower()
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


# ---- file drop ------------------------------------------------------------------------------------


class FileDrop(_Source):
    """Watches ``watch_dir``: each file, once it has stopped growing, is ingested as a unit and moved
    to ``done/`` with a report of every record, or to ``failed/`` with the reason. Names starting
    with a dot or ending like a partial download (``.tmp``, ``.part``…) are left alone, so a
    system that writes a file under a temporary name and renames it is never read half-written.

    Whoever can write to the folder cannot turn the gateway against the host: only regular files
    directly in it are taken (symlinks, FIFOs, devices and sub-folders are left where they are,
    logged once), a file is opened without following a link, ``done/`` and ``failed/`` must be real
    folders of the gateway's own user (otherwise the source stops, saying why, and moves nothing),
    files are moved and reports written relative to those folders' own handles, and a report never
    replaces anything. A name with control characters is moved to ``failed/`` under a safe name."""

    kind = "file"

    def __init__(self, connector: ConnectorConfig, runner: StoreRunner, preparer: RecordPreparer,
                 mapping: CompiledMapping | None, base_dir: Path) -> None:
        super().__init__(connector, runner, preparer, mapping)
        assert connector.watch_dir is not None
        self.folder = base_dir / connector.watch_dir
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"连接器 {connector.id} 的监视目录无法创建 / cannot create the watch_dir of "
                              f"{connector.id!r}: {exc}") from None
        self._seen: dict[str, tuple[int, int]] = {}
        self._ignored: set[str] = set()  # names logged once as not taken
        self._stopped: str | None = None  # why the folder is not read, while it is not

    @property
    def every(self) -> float:
        """Seconds between looks at the folder."""
        return float(parse_duration(self.connector.watch_every))

    async def scan_once(self) -> list[dict[str, Any]]:
        """Take every file that has not changed since the last look; their reports."""
        if not self.enabled:
            return []
        self.status.last_run = self.runner.store.now()
        try:
            targets = _Targets.open(self.folder)
        except SourceError as exc:
            if self._stopped != str(exc):
                log.error("file_drop_stopped", connector=self.connector.id, reason=str(exc))
            self._stopped = self.status.last_error = str(exc)
            return []
        if self._stopped is not None:
            log.info("file_drop_resumed", connector=self.connector.id)
            self._stopped = self.status.last_error = None
        with targets:
            return await self._scan(targets)

    async def _scan(self, targets: _Targets) -> list[dict[str, Any]]:
        try:
            entries = list(os.scandir(targets.folder))
        except OSError as exc:
            self.status.last_error = f"无法读取目录 / cannot read the folder {self.folder}: {exc}"
            raise
        seen: dict[str, tuple[int, int]] = {}
        settled: list[str] = []
        for entry in sorted(entries, key=lambda e: e.name):
            if not _finished(entry.name) or entry.name in ("done", "failed"):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not S_ISREG(stat.st_mode):
                self._ignore(entry.name, stat.st_mode)
                continue
            seen[entry.name] = (stat.st_size, stat.st_mtime_ns)
            if self._seen.get(entry.name) == seen[entry.name]:
                settled.append(entry.name)
        self._seen = seen
        reports = []
        for name in settled:
            reports.append(await self._take(targets, name))
            self._seen.pop(name, None)
        return reports

    def _ignore(self, name: str, mode: int) -> None:
        if name not in self._ignored:
            self._ignored.add(name)
            what = "symlink" if S_ISLNK(mode) else "folder" if S_ISDIR(mode) else "special file"
            log.warning("file_drop_ignored", connector=self.connector.id, file=repr(name), kind=what,
                        hint="only regular files directly in the folder are taken; it is left where it is")

    async def _take(self, targets: _Targets, name: str) -> dict[str, Any]:
        """Ingest one file as a unit and move it to ``done/`` or ``failed/``; its report. A name with
        control characters is not read, and is moved under a safe one (reports and logs quote it)."""
        unsafe = _unsafe_name(name)
        try:
            if unsafe:
                raise SourceError("文件名含控制字符，未读取 / the file name holds control characters: not read, moved "
                                  "under a safe name")
            data = await asyncio.get_running_loop().run_in_executor(None, targets.read, name, self.connector.max_file)
            report = await self._ingest(name, data)
        except SourceError as exc:
            shown = repr(name) if unsafe else name
            store = self.runner.store
            entry = LogEntry("rejected", store.now(), connector=self.connector.id, source=self.connector.id,
                             reason=f"file {shown}: {exc}")
            await self.runner.call(store.append_log, [entry])
            report = {"file": shown, "status": "failed", "error": str(exc)}
            if unsafe:
                report["moved_as"] = f"unsafe-name-{new_id()}"
            targets.move(name, "failed", report, report.get("moved_as"))
            self.status.files["failed"] += 1
            self.status.last_error = f"{shown}: {exc}"
            log.warning("file_failed", connector=self.connector.id, file=shown, reason=str(exc))
            return report
        targets.move(name, "done", report)
        self.status.files["done"] += 1
        log.info("file_done", connector=self.connector.id, file=name, records=report.get("records"))
        return report

    async def _ingest(self, name: str, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        store = self.runner.store
        earlier = await self.runner.call(store.source_mark, self.connector.id, f"file:{digest}")
        if earlier is not None:  # taken before (the same bytes again, or a crash before the move)
            return {**orjson.loads(earlier), "file": name, "status": "already_ingested",
                    "note": "同样内容的文件已经接收过，未再次接收 / a file with the same content was ingested before; "
                            "nothing was taken again"}
        content_type = FILE_TYPES.get(Path(name).suffix.lower())
        if content_type is None:
            raise SourceError(f"不支持的文件类型 / unsupported file type {Path(name).suffix or '(none)'!r}: "
                               f"use {', '.join(FILE_TYPES)}")
        if content_type in ("application/json", "application/x-ndjson", "application/xml"):
            data = data.removeprefix(b"\xef\xbb\xbf")
        if not data.strip():
            raise SourceError("空文件 / the file is empty")
        batch_id = new_id()
        summary = {"file": name, "sha256": digest, "bytes": len(data), "batch_id": batch_id, "received_at": store.now()}
        mark = SourceMark(f"file:{digest}", orjson.dumps(summary).decode(), f"file {name}")
        try:
            prepared = await self._prepare(data, content_type, whole=True)
        except BodyError as exc:
            raise SourceError(exc.message) from None
        outcomes = await self._store(batch_id, prepared, mark)
        return {**summary, "status": "done", "records": len(outcomes), **tally(outcomes),
                "results": [o.as_dict() for o in outcomes]}


class _Targets:
    """A watched folder and its ``done/`` and ``failed/`` held open as directory handles: every
    read, move and report goes through them, never through a path that could be swapped meanwhile."""

    def __init__(self, folder: int, done: int, failed: int) -> None:
        self.folder, self._to = folder, {"done": done, "failed": failed}

    @classmethod
    def open(cls, path: Path) -> _Targets:
        """The folder's handles; ``SourceError`` if the folder, ``done/`` or ``failed/`` is not a
        real folder (no symlink) owned by the gateway's user."""
        handles: list[int] = []
        try:
            handles.append(_own_folder(path, None))
            for name in ("done", "failed"):
                handles.append(_own_folder(path / name, handles[0], name))
        except BaseException:
            for fd in handles:
                os.close(fd)
            raise
        return cls(*handles)

    def __enter__(self) -> _Targets:
        return self

    def __exit__(self, *_: object) -> None:
        for fd in (self.folder, *self._to.values()):
            os.close(fd)

    def read(self, name: str, limit: int) -> bytes:
        """A regular file's bytes, opened without following a link (``SourceError`` otherwise)."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.folder)
        except OSError as exc:
            raise SourceError(f"无法打开文件 / cannot open the file: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as file:
            stat = os.fstat(file.fileno())
            if not S_ISREG(stat.st_mode):
                raise SourceError("不是普通文件 / not a regular file")
            if stat.st_nlink > 1:  # a hard link to a file elsewhere: whose content it is, is not known
                raise SourceError("文件有其他硬链接，未读取 / the file has other hard links (a link to a file "
                                  "elsewhere?): not read")
            if stat.st_size > limit:
                raise SourceError(f"文件过大 / the file has {stat.st_size} bytes, more than max_file ({limit})")
            data = file.read(limit + 1)
            if len(data) > limit:  # it grew while being read
                raise SourceError(f"文件过大 / the file grew past max_file ({limit} bytes) while being read")
            return data

    def move(self, name: str, to: str, report: dict[str, Any], as_name: str | None = None) -> None:
        """Move ``name`` into ``to`` (under a new name if one is there) with its report beside it,
        which is created, never written over."""
        folder = self._to[to]
        target = as_name or name
        if _exists(target, folder) or len(os.fsencode(target)) > _LONGEST_NAME:
            suffix = Path(target).suffix if len(os.fsencode(Path(target).suffix)) < 20 else ""
            stem = target.removesuffix(suffix) if len(os.fsencode(target)) <= _LONGEST_NAME else "renamed"
            target = f"{stem}.{new_id()}{suffix}"
        os.rename(name, target, src_dir_fd=self.folder, dst_dir_fd=folder)
        data = orjson.dumps(report, option=orjson.OPT_INDENT_2)
        for report_name in (f"{target}.report.json", f"{target}.{new_id()}.report.json"):
            try:
                fd = os.open(report_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=folder)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            return


def _own_folder(path: Path, parent: int | None, name: str | None = None) -> int:
    """A handle on a real folder owned by this process's user, created (0700) if missing."""
    where, dir_fd = (name, parent) if name is not None else (str(path), None)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(where, 0o700, dir_fd=dir_fd)
        fd = os.open(where, flags, dir_fd=dir_fd)
    except OSError as exc:
        raise SourceError(f"{path} 不是真实目录（符号链接？）/ {path} is not a real folder (a symlink?): "
                          f"{exc.strerror}; the folder is not read until this is fixed") from None
    owner = os.fstat(fd).st_uid
    if owner != os.geteuid():
        os.close(fd)
        raise SourceError(f"{path} 不属于网关的用户 / {path} belongs to user {owner}, not to the gateway's user "
                          f"{os.geteuid()}: the folder is not read until this is fixed")
    return fd


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _unsafe_name(name: str) -> bool:
    """Whether a name holds control, format or undecodable characters (which a report, a log line
    or an operator's terminal would show as something else)."""
    return any(unicodedata.category(c)[0] == "C" for c in name)


def _finished(name: str) -> bool:
    return not name.startswith((".", "~")) and not name.lower().endswith(_UNFINISHED)


# ---- running them ---------------------------------------------------------------------------------


class Sources:
    """One task per polled system and per watched folder. Where several gateways share a database,
    one of them at a time reads each source (its turn, renewed every round; taken over by another
    gateway when it has not been renewed for ``hold_turn(every)``), the others stand by."""

    def __init__(self, config: Config, runner: StoreRunner, preparer: RecordPreparer,
                 mappings: dict[str, CompiledMapping], *, clock: Callable[[], float],
                 session: aiohttp.ClientSession | None = None) -> None:
        self.runner, self.name, self._clock = runner, config.gateway.instance, clock
        self._session = session or aiohttp.ClientSession()
        self._own_session = session is None
        self.pollers = {c.id: SourcePoller(c, runner, preparer, mappings.get(c.id), config.secrets[c.id],
                                           session=self._session, clock=clock)
                        for c in config.connector if c.poll_url and c.enabled}
        self.drops = {c.id: FileDrop(c, runner, preparer, mappings.get(c.id), config.base_dir)
                      for c in config.connector if c.watch_dir and c.enabled}
        self._tasks: list[asyncio.Task[None]] = []

    def status(self) -> dict[str, SourceStatus]:
        """Each source's status by connector."""
        return {**{c: p.status for c, p in self.pollers.items()}, **{c: d.status for c, d in self.drops.items()}}

    def start(self) -> None:
        """Start polling and watching."""
        self._tasks = [asyncio.create_task(self._every(p, p.poll_once), name=f"poll-{c}")
                       for c, p in self.pollers.items()]
        self._tasks += [asyncio.create_task(self._every(d, d.scan_once), name=f"watch-{c}")
                        for c, d in self.drops.items()]

    async def stop(self) -> None:
        """Stop the tasks; a batch being stored is stored, with its mark, or not at all."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_session:
            await self._session.close()

    async def my_turn(self, source: SourcePoller | FileDrop) -> bool:
        """Whether this gateway reads ``source`` this round (it then holds the turn a while longer)."""
        mine = await self.runner.call(self.runner.store.take_turn, f"source:{source.connector.id}", self.name,
                                      self._clock(), hold_turn(source.every))
        source.status.standby = not mine
        return mine

    async def _every(self, source: SourcePoller | FileDrop, round_: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                if await self.my_turn(source):
                    await round_()
            except Exception as exc:  # noqa: BLE001 - reported in the status and log; tried again next round
                log.warning("source_round_failed", connector=source.connector.id, reason=str(exc))
            await asyncio.sleep(source.every)


def hold_turn(every: float) -> float:
    """How long a source's turn lasts unrenewed: three rounds, and a minute at least (a round may
    take long against a slow system); a gateway that died has its sources taken over after it."""
    return max(60.0, 3 * every)
