"""Folders where systems drop files: each file, once it has stopped growing, is prepared and stored
as a unit with its digest as its ``SourceMark`` (a file taken before is never taken twice), and
moved to ``done/`` or ``failed/`` with its report."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import unicodedata
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Any

import orjson
import structlog

from gateway.config import ConnectorConfig
from gateway.exceptions import BodyError, ConfigError, SourceError
from gateway.exchange_log import LogEntry
from gateway.flow.in_force import PolicyInForce
from gateway.flow.prepare import RecordPreparer
from gateway.flow.sources.base import Source
from gateway.observability import new_id
from gateway.store.model import SourceMark, tally
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping
from mappings.media import FILE_TYPES
from policy import parse_duration

__all__ = ["FileDrop"]

log = structlog.get_logger("supex.sources")
_UNFINISHED = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".swp")  # still being written
_LONGEST_NAME = 200  # bytes of a moved file's name, leaving room for an id and ".report.json" (255 at most)


class FileDrop(Source):
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

    def __init__(self, connector: ConnectorConfig, runner: StoreRunner, *, in_force: PolicyInForce,
                 preparer: RecordPreparer, mapping: CompiledMapping | None, base_dir: Path) -> None:
        super().__init__(connector, runner, in_force=in_force, preparer=preparer, mapping=mapping)
        assert connector.watch_dir is not None
        self.folder = base_dir / connector.watch_dir
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"连接器 {connector.id} 的监视目录无法创建 / cannot create the watch_dir of "
                              f"{connector.id!r}: {exc}") from exc
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
            await self.runner.call(store.log.append, [entry])
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
        earlier = await self.runner.call(store.records.source_mark, self.connector.id, f"file:{digest}")
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
            raise SourceError(exc.message) from exc
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
            raise SourceError(f"无法打开文件 / cannot open the file: {exc.strerror}") from exc
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
                          f"{exc.strerror}; the folder is not read until this is fixed") from exc
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
