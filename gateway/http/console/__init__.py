"""The review console at ``/console/``: security staff search the exchange log in a browser.

Auditors sign in with their token; the session lives in an HttpOnly, SameSite=Strict cookie and
every form carries a CSRF token. Pages show the log's metadata only — who, what type and id, which
rule and purpose, which field paths — never a payload value, and every search is itself logged
(``audit_query``). Pages are rendered on the server (Jinja2, autoescaped: a company named
``<script>`` is shown as text), with a stylesheet served by supex itself and no script at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import structlog
from aiohttp import web

from gateway.exchange_log import EVENTS, ChainCheck, LogEntry
from gateway.flow.checkpoints import held_to_tree
from gateway.flow.procedure import VIEWS
from gateway.http.audit import audited
from gateway.http.console.i18n import LANGUAGES, words
from gateway.http.context import CONFIG, METRICS, STORE, THROTTLE
from gateway.http.routes import CONSOLE as CONSOLE_ROLE
from gateway.http.routes import PUBLIC, Route, route
from gateway.http.security import TokenBook, client_key
from gateway.store.model import LogFilter
from gateway.store.procedure import QUALITY_FIGURES, month_span, quality_rows
from gateway.store.sql import procedure_series
from policy import local_today

__all__ = ["CONSOLE", "ROUTES", "ChainMonitor", "Console", "admit", "install"]

log = structlog.get_logger("supex.console")

COOKIE, LANG_COOKIE = "supex_console", "supex_lang"
SESSION_SECONDS = 30 * 60  # idle time after which a session ends
PAGE = 50
_PROBLEMS = ("rejected", "overdue", "dead_lettered", "delivery_failed", "denied")
_FILTERS = ("since", "until", "connector", "counterpart", "record_type", "record_id", "event", "rule", "source")


@dataclass
class Session:
    """A signed-in auditor."""

    auditor: str
    csrf: str
    expires: float


@dataclass
class ChainMonitor:
    """The chain's last full verification, kept so that pages answer at once; run at start-up,
    every hour, and when an auditor asks."""

    result: ChainCheck | None = None
    checked_at: str | None = None
    running: bool = False
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self, app: web.Application) -> None:
        """Verify now in the background (unless a verification is running)."""
        if not self.running:
            self.running = True
            self._task = asyncio.create_task(self._verify(app))

    async def _verify(self, app: web.Application) -> None:
        runner = app[STORE]
        store = runner.store
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(None, lambda: list(store.log.verify())[-1])
            outcome = await runner.call(held_to_tree, store, outcome, None)
            self.result, self.checked_at = outcome, store.now()
            if not outcome.ok:
                log.error("chain_broken", first_bad_seq=outcome.first_bad_seq, reason=outcome.reason)
        except Exception:
            log.exception("chain_verification_failed")
        finally:
            self.running = False

    async def every_hour(self, app: web.Application) -> None:
        """Verify at start-up and then hourly."""
        while True:
            self.start(app)
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        """Wait for a running verification to end."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class Console:
    """Sessions, sign-in attempts and the chain monitor of one gateway."""

    def __init__(self, tokens: TokenBook, clock: Callable[[], float] = time.monotonic) -> None:
        self.tokens, self._clock = tokens, clock
        self.sessions: dict[str, Session] = {}
        self.chain = ChainMonitor()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(resources.files("gateway.http.console").joinpath("templates"))),
            autoescape=True, undefined=jinja2.StrictUndefined)

    # ---- sessions ---------------------------------------------------------------------------------

    def session(self, request: web.Request) -> Session | None:
        """The request's live session, its idle time renewed."""
        sid = request.cookies.get(COOKIE, "")
        session = self.sessions.get(sid)
        now = self._clock()
        if session is None or session.expires < now:
            self.sessions.pop(sid, None)
            return None
        session.expires = now + SESSION_SECONDS
        return session

    def open_session(self, auditor: str) -> tuple[str, Session]:
        """A new session for ``auditor`` (old ones of everybody expire on their own)."""
        now = self._clock()
        for sid in [s for s, session in self.sessions.items() if session.expires < now]:
            del self.sessions[sid]
        sid = secrets.token_urlsafe(32)
        session = self.sessions[sid] = Session(auditor, secrets.token_urlsafe(24), now + SESSION_SECONDS)
        return sid, session



CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("console_session", Session)


# ---- rendering -------------------------------------------------------------------------------------

def _lang(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "zh")
    return lang if lang in LANGUAGES else "zh"


def _render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    console = request.app[CONSOLE]
    lang = _lang(request)
    session = values.pop("session", None)
    html = console.templates.get_template(template).render(
        t=words(lang), lang=lang, session=session, chain=console.chain, path=request.path_qs, **values)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    _harden(response)
    return response


def _harden(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                                   "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"


def _redirect(location: str) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    _harden(response)
    return response


FORM_LIMIT = 64 * 1024  # a console form is small: a larger body is refused before it is read


async def admit(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                ) -> web.StreamResponse:
    """A console page for a signed-in auditor only (others are sent to the sign-in page); a form
    must carry the session's CSRF token."""
    session = request.app[CONSOLE].session(request)
    if session is None:
        return _redirect("/console/login")
    if request.method == "POST":
        form = await _form(request)
        if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
            log.warning("console_csrf_refused", auditor=session.auditor, path=request.path)
            raise web.HTTPForbidden(text="CSRF token missing or wrong / 表单令牌无效")
    request[SESSION] = session
    return await handler(request)


async def _form(request: web.Request) -> Any:
    if request.content_length is None or request.content_length > FORM_LIMIT:
        raise web.HTTPRequestEntityTooLarge(max_size=FORM_LIMIT, actual_size=request.content_length or 0)
    return await request.post()


async def _audited(request: web.Request, session: Session, what: str) -> None:
    await audited(request, f"console {what}", by=session.auditor)


async def _read(function: Callable[[], Any]) -> Any:
    """A read beside the store thread (the console never waits on a commit)."""
    return await asyncio.get_running_loop().run_in_executor(None, function)


# ---- pages ---------------------------------------------------------------------------------------

async def login_page(request: web.Request) -> web.Response:
    """GET /console/login: the sign-in form (its CSRF token in a cookie of its own)."""
    return _login_form(request)


def _login_form(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = _render(request, "login.html", status=status, csrf=token, error=error)
    response.set_cookie("supex_login", token, httponly=True, samesite="Strict", path="/console/",
                        secure=request.secure)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """POST /console/login: an auditor's token opens a session; failures are throttled by address
    and over all addresses (the same throttle as bearer tokens on the API)."""
    console, throttle = request.app[CONSOLE], request.app[THROTTLE]
    t = words(_lang(request))
    address = client_key(request.remote)
    wait = throttle.wait(address)
    if wait:
        log.warning("console_login_throttled", address=address)
        response = _login_form(request, t["too_many"].format(seconds=wait), status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    form = await _form(request)
    if not hmac.compare_digest(str(form.get("csrf", "")), request.cookies.get("supex_login", "-")):
        return _login_form(request, t["expired"], status=403)
    identity = console.tokens.identify(str(form.get("token", "")).strip())
    if identity is None or identity.role != "auditor":
        throttle.failed(address)
        request.app[METRICS].auth_failures.labels("console").inc()
        log.warning("console_login_refused", address=address)
        return _login_form(request, t["bad_token"], status=401)
    throttle.succeeded(address)
    sid, _ = console.open_session(identity.name)
    log.info("console_login", auditor=identity.name, address=address)
    response = _redirect("/console/")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", path="/console/", secure=request.secure,
                        max_age=SESSION_SECONDS)
    response.del_cookie("supex_login", path="/console/")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /console/logout."""
    request.app[CONSOLE].sessions.pop(request.cookies.get(COOKIE, ""), None)
    response = _redirect("/console/login")
    response.del_cookie(COOKIE, path="/console/")
    return response


async def language(request: web.Request) -> web.StreamResponse:
    """GET /console/language?to=en|zh&back=PATH: switch the interface's language."""
    lang = request.query.get("to", "zh")
    back = request.query.get("back", "/console/")
    if not back.startswith("/console/"):
        back = "/console/"
    response = _redirect(back)
    response.set_cookie(LANG_COOKIE, lang if lang in LANGUAGES else "zh", samesite="Strict", path="/console/")
    return response


async def overview(request: web.Request) -> web.Response:
    """GET /console/: the chain's status, problem counts and the daily volume chart."""
    session = request[SESSION]
    store = request.app[STORE].store
    since_day = (local_today(store.clock()) - dt.timedelta(days=13)).isoformat()
    volume, counts, head = await _read(lambda: (store.log.volume(since_day), store.log.event_counts(_PROBLEMS),
                                                store.log.head()))
    await _audited(request, session, "overview")
    return _render(request, "overview.html", session=session, counts=counts, entries=head[0],
                   chart=_chart(volume, since_day, lambda connector, event: connector if event == "stored" else None),
                   steps=_chart(volume, since_day, lambda _, event: procedure_series(event)))


async def verify(request: web.Request) -> web.StreamResponse:
    """POST /console/verify: verify the whole chain now, in the background."""
    session = request[SESSION]
    request.app[CONSOLE].chain.start(request.app)
    await _audited(request, session, "verify")
    return _redirect("/console/")


async def events(request: web.Request) -> web.Response:
    """GET /console/events: the log searched, newest first, a page at a time."""
    session = request[SESSION]
    configured = request.app[CONFIG].connectors()
    store = request.app[STORE].store
    kept = {k: v for k, v in request.query.items() if k in _FILTERS and v}
    try:
        where = await _read(lambda: LogFilter.of(request.query, is_connector=store.log.knows(configured)))
    except ValueError as exc:  # shown, not searched: it would match nothing
        return _render(request, "events.html", status=400, session=session, entries=[], filters=kept, events=EVENTS,
                       older=None, newest=None, error=str(exc))
    before = request.query.get("before", "")
    store = request.app[STORE].store
    found = await _read(lambda: store.log.search(where, before=int(before) if before.isdigit() else None,
                                                          limit=PAGE + 1))
    await _audited(request, session, "events")
    page, more = found[:PAGE], len(found) > PAGE
    older = f"/console/events?{urlencode({**kept, 'before': page[-1].seq})}" if more and page else None
    newest = f"/console/events?{urlencode(kept)}" if before else None
    return _render(request, "events.html", session=session, entries=page, filters=kept, events=EVENTS,
                   older=older, newest=newest, error=None)


async def trail(request: web.Request) -> web.Response:
    """GET /console/trail?source=&record_id=: every event of one record."""
    session = request[SESSION]
    source, record_id = request.query.get("source", "").strip(), request.query.get("record_id", "").strip()
    entries: list[LogEntry] = []
    if record_id:
        store = request.app[STORE].store
        entries = await _read(lambda: store.log.trail(source, record_id) if source
                              else store.log.search(LogFilter(record_id=record_id), limit=1000)[::-1])
        await _audited(request, session, "trail")
    return _render(request, "trail.html", session=session, entries=entries, source=source, record_id=record_id)


async def problems(request: web.Request) -> web.Response:
    """GET /console/problems: rejections, overdue and failed deliveries, dead letters, denials by rule."""
    session = request[SESSION]
    store = request.app[STORE].store

    def gather() -> dict[str, Any]:
        recent = {event: store.log.search(LogFilter(event=event), limit=20)
                  for event in ("rejected", "overdue", "delivery_failed")}
        return {"recent": recent, "dead": store.outbox.dead_letters(limit=100), "denials": store.log.denials_by_rule(),
                "counts": store.log.event_counts(_PROBLEMS)}

    found = await _read(gather)
    await _audited(request, session, "problems")
    return _render(request, "problems.html", session=session, **found)


# the procedure's items as the console shows them: metadata only (no objection's reason or value)
_SHOWN = {"request": ("id", "status", "requester", "provider", "record_type", "purpose", "due_at", "escalated_at"),
          "objection": ("id", "status", "objector", "producer", "record_type", "record_id", "pointers", "due_at",
                        "escalated_at"),
          "duty": ("id", "status", "owed_by", "owed_to", "obligation", "record_type", "record_id", "due_at",
                   "escalated_at")}
_STILL_OPEN = {"request": ("submitted", "overdue", "objected"), "objection": ("open", "overdue"),
               "duty": ("open", "overdue")}


async def procedure(request: web.Request) -> web.Response:
    """GET /console/procedure: open and overdue requests, objections and duties (metadata only)."""
    session = request[SESSION]
    store = request.app[STORE].store

    def gather() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for kind, statuses in _STILL_OPEN.items():
            items = [VIEWS[kind](i) for status in statuses for i in store.procedure.listed(kind, status=status,
                                                                                            limit=200)]
            found[kind] = [{k: item.get(k) for k in _SHOWN[kind]} for item in
                           sorted(items, key=lambda i: (i["status"] != "overdue", i["due_at"] or ""))]
        return found

    found = await _read(gather)
    await _audited(request, session, "procedure")
    return _render(request, "procedure.html", session=session, items=found, shown=_SHOWN)


async def quality(request: web.Request) -> web.Response:
    """GET /console/quality?month=: producers' timeliness and acceptance, each figure a link to
    the records behind it."""
    session = request[SESSION]
    store = request.app[STORE].store
    try:
        month, start, end = month_span(request.query.get("month") or None, store.clock())
    except ValueError as exc:
        return _render(request, "quality.html", status=400, session=session, rows=[], month="", error=str(exc),
                       figures=QUALITY_FIGURES)
    departments = {c.id: c.department_code for c in request.app[CONFIG].connector}
    rows = quality_rows(await _read(lambda: store.procedure.quality(start, end)), departments)
    await _audited(request, session, "quality")
    return _render(request, "quality.html", session=session, rows=rows, month=month, error=None,
                   figures=QUALITY_FIGURES)


async def quality_records(request: web.Request) -> web.Response:
    """GET /console/quality/records?month=&connector=&figure=: the records behind one figure."""
    session = request[SESSION]
    store = request.app[STORE].store
    connector, figure = request.query.get("connector", ""), request.query.get("figure", "")
    try:
        month, start, end = month_span(request.query.get("month") or None, store.clock())
        if figure not in QUALITY_FIGURES or not connector:
            raise ValueError(f"figure 应为 {', '.join(QUALITY_FIGURES)} 之一，并给出 connector / figure must be one of "
                             f"{', '.join(QUALITY_FIGURES)}, with a connector")
    except ValueError as exc:
        return _render(request, "quality_records.html", status=400, session=session, records=[], month="",
                       connector=connector, figure=figure, error=str(exc))
    records = await _read(lambda: store.procedure.quality_records(connector, figure, start, end))
    await _audited(request, session, "quality records")
    return _render(request, "quality_records.html", session=session, records=records, month=month,
                   connector=connector, figure=figure, error=None)


# ---- the chart ---------------------------------------------------------------------------------------

_COLOURS = ("#1f6feb", "#d4a72c", "#2da44e", "#cf222e", "#8250df", "#bf3989", "#0a7d8c", "#6e7781")


def _chart(volume: list[tuple[str, str, str, int]], since_day: str,
           series: Callable[[str, str], str | None]) -> dict[str, Any]:
    """A day's counts as stacked bars for an inline SVG (no script, no CDN), one series a name that
    ``series(connector, event)`` gives (records stored by connector; the procedure's steps by item)."""
    start = dt.date.fromisoformat(since_day)
    days = [(start + dt.timedelta(days=n)).isoformat() for n in range(14)]
    stored: dict[str, dict[str, int]] = {}
    for day, connector, event, count in volume:
        name = series(connector, event)
        if name is not None:
            stored.setdefault(name, {})[day] = stored.get(name, {}).get(day, 0) + count
    connectors = sorted(stored)
    top = max((sum(stored[c].get(d, 0) for c in connectors) for d in days), default=0) or 1
    bars = []
    width, height, gap = 40, 160, 8
    for n, day in enumerate(days):
        y = height
        for k, connector in enumerate(connectors):
            count = stored[connector].get(day, 0)
            if count:
                h = max(1, round(count * height / top))
                y -= h
                bars.append({"x": n * (width + gap), "y": y, "w": width, "h": h,
                             "colour": _COLOURS[k % len(_COLOURS)], "title": f"{day} {connector}: {count}"})
    return {"days": days, "bars": bars, "top": top, "width": len(days) * (width + gap), "height": height,
            "legend": [(c, _COLOURS[k % len(_COLOURS)], sum(stored[c].values())) for k, c in enumerate(connectors)]}


async def _root(_request: web.Request) -> web.Response:
    return _redirect("/console/")


_SIGNED_IN, _ANYONE = {CONSOLE_ROLE}, {PUBLIC}
ROUTES: list[Route] = [
    route("GET", "/console", _root, name="console_root", roles=_ANYONE),
    route("GET", "/console/", overview, name="console", roles=_SIGNED_IN),
    route("GET", "/console/login", login_page, name="console_login_page", roles=_ANYONE),
    route("POST", "/console/login", login, name="console_login", roles=_ANYONE),
    route("POST", "/console/logout", logout, name="console_logout", roles=_SIGNED_IN),
    route("GET", "/console/language", language, name="console_language", roles=_ANYONE),
    route("POST", "/console/verify", verify, name="console_verify", roles=_SIGNED_IN),
    route("GET", "/console/events", events, name="console_events", roles=_SIGNED_IN),
    route("GET", "/console/trail", trail, name="console_trail", roles=_SIGNED_IN),
    route("GET", "/console/problems", problems, name="console_problems", roles=_SIGNED_IN),
    route("GET", "/console/procedure", procedure, name="console_procedure", roles=_SIGNED_IN),
    route("GET", "/console/quality", quality, name="console_quality", roles=_SIGNED_IN),
    route("GET", "/console/quality/records", quality_records, name="console_quality_records", roles=_SIGNED_IN),
    Route("GET", "/console/static/", None, "console_static", frozenset(_ANYONE),
          static=Path(str(resources.files("gateway.http.console").joinpath("static")))),
]


def install(app: web.Application, clock: Callable[[], float] = time.monotonic) -> None:
    """Give ``app`` its console's state and the hourly chain verification (its routes are ``ROUTES``)."""
    app[CONSOLE] = Console(TokenBook(app[CONFIG]), clock)

    async def monitor(app: web.Application) -> Any:
        task = asyncio.create_task(app[CONSOLE].chain.every_hour(app))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await app[CONSOLE].chain.stop()

    app.cleanup_ctx.append(monitor)
