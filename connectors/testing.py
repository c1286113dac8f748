"""Simulators of the external systems: real aiohttp servers for tests, the demo and users' own tests.

A simulator plays one registered system. It receives the gateway's pushes at ``/in`` in the
system's own format, checking the signature with the connector's secret (a wrong one is answered
401, as a real receiver must), and serves polls at ``/records`` from rows in its own format, page
by page with a cursor. It can be told to misbehave the ways real systems do::

    async with InternetPlusSimulator("ip", secret) as system:
        system.fail_next(3)            # 503 for the next three pushes
        ...                            # point the connector's endpoint at system.url + "/in"
        assert system.records          # what arrived, parsed from the system's format
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import orjson
from aiohttp import web
from lxml import etree

from connectors.kinds import NEXT_CURSOR_HEADER
from connectors.signing import signature_problem
from mappings.formats import parse_xml
from mappings.media import NOTICES

__all__ = [
    "DepartmentSimulator",
    "DoubleRandomSimulator",
    "EnforcementOversightSimulator",
    "InternetPlusSimulator",
    "PagedApiSimulator",
    "Received",
    "SystemSimulator",
    "simulator_for",
]



@dataclass(frozen=True)
class Received:
    """One push as it arrived: its content type, its records parsed from the system's format, and
    the signature problem found (``None``: correctly signed)."""

    content_type: str
    records: list[dict[str, Any]]
    body: bytes
    problem: str | None = None


class SystemSimulator:
    """An external system on a local port: receives pushes, serves polls, misbehaves on request.

    ``fmt`` is what it speaks: ``json`` (a list of objects), ``xml`` (``record_tag`` elements under
    ``root_tag``) or ``csv`` (a header line, in ``encoding``)."""

    kind: ClassVar[str] = "http_json"
    fmt: ClassVar[str] = "json"
    root_tag: ClassVar[str] = "records"
    record_tag: ClassVar[str] = "record"
    namespace: ClassVar[str | None] = None
    encoding: ClassVar[str] = "utf-8"

    def __init__(self, connector_id: str, secret: str, *, rows: Iterable[dict[str, Any]] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.connector_id, self.secret, self._clock = connector_id, secret, clock
        self.rows: list[dict[str, Any]] = list(rows)  # what polls are served, in the system's terms
        self.received: list[Received] = []  # every push that was accepted
        self.notices: list[dict[str, Any]] = []  # the sharing procedure's notices pushed to it
        self.refused: list[Received] = []  # pushes answered 401 or with a failure
        self.polls: list[dict[str, str]] = []  # the query of every poll
        self._failures: list[int] = []
        self._delay = 0.0
        self._behaviour = "normal"
        self._nonces: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ---- running --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on ``host:port`` (0: any free port); ``url`` is then set."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/in", self._receive)
        app.router.add_get("/records", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- misbehaving ----------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests (pushes or polls) with ``status``."""
        self._failures.extend([status] * count)

    def slow_down(self, seconds: float) -> None:
        """Wait ``seconds`` before every answer (0: answer at once)."""
        self._delay = seconds

    def behave(self, how: str) -> None:
        """``normal``; ``garbage`` (200 with a body that is no format at all); ``redirect`` (302
        elsewhere); ``html`` (a login page); ``repeat_cursor`` (polls answer the same cursor with
        the same records); ``endless`` (polls never run out of pages)."""
        if how not in {"normal", "garbage", "redirect", "html", "repeat_cursor", "endless"}:
            raise ValueError(f"unknown behaviour {how!r}")
        self._behaviour = how

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every record received so far, in arrival order."""
        return [record for push in self.received for record in push.records]

    async def _misbehave(self) -> web.Response | None:
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._failures:
            return web.Response(status=self._failures.pop(0), text="temporarily unavailable")
        if self._behaviour == "garbage":
            return web.Response(body=b"\x00\xff garbage \x13", content_type="application/octet-stream")
        if self._behaviour == "redirect":
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        if self._behaviour == "html":
            return web.Response(text="<!DOCTYPE html><html><body>请登录 / please log in</body></html>",
                                content_type="text/html")
        return None

    # ---- receiving ------------------------------------------------------------------------------

    def _signed(self, request: web.Request, body: bytes) -> str | None:
        problem = signature_problem(request.headers, request.method, request.raw_path, body,
                                    key=self.connector_id, secret=self.secret, now=self._clock())
        nonce = request.headers.get("X-Supex-Nonce", "")
        if problem is None and nonce in self._nonces:
            problem = "nonce used before (a replay)"
        self._nonces.add(nonce)
        return problem

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        problem = self._signed(request, body)
        if problem is not None:
            self.refused.append(Received(content_type, [], body, problem))
            return web.json_response({"error": {"code": "unauthorized", "message": problem}}, status=401)
        if (answer := await self._misbehave()) is not None:
            self.refused.append(Received(content_type, [], body, f"answered {answer.status}"))
            return answer
        if content_type.split(";", 1)[0].strip().lower() == NOTICES:  # the sharing procedure's notices
            self.notices.extend(orjson.loads(body).get("notices", []))
            return web.json_response({"received": 0})
        try:
            records = self.parse(body, content_type)
        except ValueError as exc:
            self.refused.append(Received(content_type, [], body, str(exc)))
            return web.json_response({"error": {"code": "malformed", "message": str(exc)}}, status=400)
        self.received.append(Received(content_type, records, body))
        return web.json_response({"received": len(records)})

    def parse(self, body: bytes, content_type: str) -> list[dict[str, Any]]:
        """The records of a body in the system's format (JSON objects are kept as they are, XML
        elements and CSV rows become dicts of their fields); ``ValueError`` if it is not one."""
        main = content_type.split(";", 1)[0].strip().lower()
        if main == "application/json":
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc}") from exc
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(item, dict) for item in items):
                raise ValueError("not a list of JSON objects")
            return items
        if main in ("application/xml", "text/xml"):
            try:
                root = parse_xml(body)
            except Exception as exc:  # any parse failure is the sender's
                raise ValueError(f"not XML: {exc}") from exc
            return [{etree.QName(child).localname: child.text or "" for child in element}
                    for element in root.iter(f"{{{self.namespace}}}{self.record_tag}" if self.namespace
                                             else self.record_tag)]
        if main == "text/csv":
            try:
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = body.decode("gb18030", errors="strict")
            return list(csv.DictReader(io.StringIO(text)))
        raise ValueError(f"unexpected content type {main or '(none)'!r}")

    # ---- being polled ---------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.Response:
        problem = self._signed(request, b"")
        if problem is not None:
            return web.json_response({"error": {"code": "unauthorized", "message": problem}}, status=401)
        if (answer := await self._misbehave()) is not None:
            return answer
        self.polls.append(dict(request.query))
        since = request.query.get("since", "0")
        limit = int(request.query.get("limit", "100"))
        start = int(since) if since.isdigit() else 0
        page = self.rows[start:start + limit]
        after = start + len(page)
        if self._behaviour == "repeat_cursor":
            page, after = self.rows[:limit], start
        elif self._behaviour == "endless":
            page, after = self.rows[:limit], start + limit
        return self.page(page, str(after))

    def page(self, rows: list[dict[str, Any]], after: str) -> web.Response:
        """One page of rows in the system's format, with the cursor after it."""
        headers = {NEXT_CURSOR_HEADER: after}
        if self.fmt == "xml":
            return web.Response(body=self.write_xml(rows), content_type="application/xml", headers=headers)
        if self.fmt == "csv":
            return web.Response(body=self.write_csv(rows), content_type="text/csv", charset=self.encoding,
                                headers=headers)
        return web.Response(body=orjson.dumps({"records": rows, "next": after}), content_type="application/json")

    def write_xml(self, rows: list[dict[str, Any]]) -> bytes:
        """Rows as the system's XML document."""
        ns = self.namespace

        def tag(name: str) -> str:
            return f"{{{ns}}}{name}" if ns else name

        root = etree.Element(tag(self.root_tag), nsmap={None: ns} if ns else None)
        for row in rows:
            element = etree.SubElement(root, tag(self.record_tag))
            for name, value in row.items():
                etree.SubElement(element, tag(name)).text = str(value)
        return bytes(etree.tostring(root, encoding="utf-8", xml_declaration=True))

    def write_csv(self, rows: list[dict[str, Any]]) -> bytes:
        """Rows as the system's CSV export."""
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue().encode(self.encoding)


class DepartmentSimulator(SystemSimulator):
    """A departmental business system speaking the standard interface (``http_json``)."""


class InternetPlusSimulator(SystemSimulator):
    """The Internet+ Supervision system: JSON rows of its exchange tables."""

    kind = "internet_plus"


class EnforcementOversightSimulator(SystemSimulator):
    """The enforcement oversight system: 双公示-style XML, ``XZCF`` elements in ``urn:sd:zfjd:xzcf:1``."""

    kind = "enforcement_oversight"
    fmt = "xml"
    root_tag = "XZCF_LIST"
    record_tag = "XZCF"
    namespace = "urn:sd:zfjd:xzcf:1"


class DoubleRandomSimulator(SystemSimulator):
    """The double-random platform: CSV exports with Chinese headers, in GB18030."""

    kind = "double_random"
    fmt = "csv"
    encoding = "gb18030"


class PagedApiSimulator(SystemSimulator):
    """A department's paged JSON API as provincial systems write them: ``GET /records?pageNo=P&pageSize=S``
    (and ``updateTimeStart=T`` for what changed after ``T``), answering ``{"code": 0, "msg": "成功",
    "data": {"total": N, "pageNo": P, "pageSize": S, "list": [...], "next": "/records?pageNo=P+1…"}}``,
    rows in ``updateTime`` order (``offset=O`` reads from row ``O`` instead of by page).
    ``fail_page(P)`` makes page ``P`` answer ``code`` 500 with a message; ``misreport_total(N)``
    reports a total that is not the number of rows."""

    def __init__(self, connector_id: str, secret: str, *, rows: Iterable[dict[str, Any]] = (),
                 clock: Callable[[], float] = time.time, watermark: str = "updateTime") -> None:
        super().__init__(connector_id, secret, rows=rows, clock=clock)
        self.watermark = watermark
        self._failing: set[int] = set()
        self._total: int | None = None

    def fail_page(self, page: int) -> None:
        """Answer page ``page`` with ``{"code": 500, "msg": "数据库连接超时"}``."""
        self._failing.add(page)

    def misreport_total(self, total: int | None) -> None:
        """Report ``total`` instead of the number of rows (``None``: the truth)."""
        self._total = total

    async def _serve(self, request: web.Request) -> web.Response:
        problem = self._signed(request, b"")
        if problem is not None:
            return web.json_response({"code": 401, "msg": problem}, status=401)
        if (answer := await self._misbehave()) is not None:
            return answer
        self.polls.append(dict(request.query))
        page, size = int(request.query.get("pageNo", "1")), int(request.query.get("pageSize", "20"))
        if page in self._failing:
            return web.json_response({"code": 500, "msg": "数据库连接超时", "data": None})
        after = request.query.get("updateTimeStart")
        rows = sorted((r for r in self.rows if after is None or int(r[self.watermark]) > int(after)),
                      key=lambda r: int(r[self.watermark]))
        start = int(request.query["offset"]) if "offset" in request.query else (page - 1) * size
        chosen = rows[start:start + size]
        total = len(rows) if self._total is None else self._total
        data: dict[str, Any] = {"total": total, "pageNo": page, "pageSize": size, "list": chosen}
        if start + size < len(rows):
            data["next"] = f"/records?pageNo={page + 1}&pageSize={size}"
        return web.json_response({"code": 0, "msg": "成功", "data": data})


def simulator_for(kind: str) -> type[SystemSimulator]:
    """The simulator of a connector kind (the standard-interface one for kinds without their own)."""
    return {cls.kind: cls for cls in (InternetPlusSimulator, EnforcementOversightSimulator,
                                      DoubleRandomSimulator)}.get(kind, DepartmentSimulator)
