"""The review console over HTTP: sign-in, sessions and CSRF, search, trails, problems, the chain
status, languages — metadata only, hostile text shown as text, every look logged."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Config
from gateway.http.app import create_app
from gateway.http.console import CONSOLE
from gateway.http.context import STORE
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, NOW, Signed, inspection

MARKER = "独有标记QK27"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Browser:
    """A test client that keeps cookies and fills in the CSRF token of the page it last read."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client, self.csrf = client, ""

    async def get(self, path: str) -> tuple[int, str]:
        answer = await self.client.get(path)
        text = await answer.text()
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        self.csrf = found[1] if found else self.csrf
        return answer.status, text

    async def post(self, path: str, **form: str) -> tuple[int, str]:
        answer = await self.client.post(path, data={"csrf": self.csrf, **form})
        return answer.status, await answer.text()

    async def sign_in(self, token: str = AUDITOR_TOKEN) -> tuple[int, str]:
        await self.get("/console/login")
        status, text = await self.post("/console/login", token=token)
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        self.csrf = found[1] if found else self.csrf
        return status, text


@pytest.fixture
async def console(config: Config, aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> tuple[
    Browser, Signed, Clock
]:
    clock = Clock()
    client = await aiohttp_client(create_app(config, clock=lambda: NOW, monotonic_clock=clock, deliver=False))
    return Browser(client), Signed(client), clock


async def _pushed(gw: Signed, count: int = 3) -> None:
    assert (await gw.push("amr", [inspection(n, action_name=f"{MARKER}-{n}") for n in range(count)]))[0] == 200


async def test_pages_need_a_session_and_the_login_sets_a_strict_httponly_cookie(console: Any) -> None:
    browser, _, _ = console
    for path in ("/console/", "/console/events", "/console/trail", "/console/problems"):
        answer = await browser.client.get(path, allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, "/console/login")
    await browser.get("/console/login")
    answer = await browser.client.post("/console/login", data={"csrf": browser.csrf, "token": AUDITOR_TOKEN},
                                       allow_redirects=False)
    assert answer.status == 303
    cookie = answer.headers.getall("Set-Cookie")
    session = next(c for c in cookie if c.startswith("supex_console="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/console/" in session
    status, page = await browser.get("/console/")
    assert status == 200 and "sec" in page


async def test_wrong_tokens_and_admin_tokens_do_not_sign_in(console: Any) -> None:
    browser, _, _ = console
    status, page = await browser.sign_in("not-the-token")
    assert status == 401 and "令牌无效" in page
    status, page = await browser.sign_in(ADMIN_TOKEN)  # administrators manage; they do not review
    assert status == 401
    await browser.get("/console/login")
    answer = await browser.client.post("/console/login", data={"csrf": "forged", "token": AUDITOR_TOKEN})
    assert answer.status == 403


async def test_failed_sign_ins_are_throttled_by_address(console: Any) -> None:
    browser, _, clock = console
    for _ in range(10):
        assert (await browser.sign_in("wrong"))[0] == 401
    status, page = await browser.sign_in(AUDITOR_TOKEN)  # even the right token waits
    assert status == 429 and "秒后再试" in page
    clock.now += 1.5  # the first wait is a second; each failure after it doubles the next
    assert (await browser.sign_in("wrong"))[0] == 401
    assert (await browser.sign_in(AUDITOR_TOKEN))[0] == 429
    clock.now += 2.5
    assert (await browser.sign_in(AUDITOR_TOKEN))[0] == 200


async def test_forms_without_the_session_csrf_token_are_refused(console: Any) -> None:
    browser, _, _ = console
    await browser.sign_in()
    answer = await browser.client.post("/console/verify", data={"csrf": "forged"})
    assert answer.status == 403
    answer = await browser.client.post("/console/logout", data={})
    assert answer.status == 403
    assert (await browser.post("/console/logout"))[0] == 200  # with it: signed out, back at the login
    assert (await browser.client.get("/console/", allow_redirects=False)).status == 303


async def test_sessions_end_after_idle_time(console: Any) -> None:
    browser, _, clock = console
    await browser.sign_in()
    clock.now += 31 * 60
    assert (await browser.client.get("/console/events", allow_redirects=False)).status == 303


async def test_events_are_searched_newest_first_and_paged(console: Any) -> None:
    browser, gw, _ = console
    await browser.sign_in()
    await gw.push("amr", [inspection(n) for n in range(30)])  # 1 received, 30 stored, 30 routed
    status, page = await browser.get("/console/events?event=stored")
    seqs = [int(s) for s in re.findall(r'<tr class="event-stored">\s*<td>(\d+)</td>', page)]
    assert status == 200 and len(seqs) == 30 and seqs == sorted(seqs, reverse=True)
    status, page = await browser.get("/console/events")
    first = [int(s) for s in re.findall(r'<tr class="event-\w+">\s*<td>(\d+)</td>', page)]
    older = re.search(r'href="(/console/events\?before=\d+)" id="older"', page)
    assert len(first) == 50 and older
    _, page = await browser.get(older[1].replace("&amp;", "&"))
    rest = [int(s) for s in re.findall(r'<tr class="event-\w+">\s*<td>(\d+)</td>', page)]
    assert max(rest) < min(first) and min(rest) == 1  # the last page reaches the first entry
    _, page = await browser.get("/console/events?connector=jinan")  # the party on either side
    assert page.count('<tr class="event-routed">') == 30


async def test_a_records_trail_shows_rule_purpose_and_fields(console: Any) -> None:
    browser, gw, _ = console
    await browser.sign_in()
    await gw.push("amr", [inspection(7)])
    await gw.inbox("jinan")
    status, page = await browser.get("/console/trail?source=amr&record_id=in-7")
    assert status == 200
    assert [e for e in ("received", "stored", "routed", "delivered") if f'class="tag">{e}<' in page] == [
        "received", "stored", "routed", "delivered"]
    assert "<td>jinan</td>" in page and "subscription" in page


async def test_hostile_text_is_shown_as_text(console: Any) -> None:
    browser, gw, _ = console
    await browser.sign_in()
    hostile = "<script>alert(1)</script>"
    rule = {"id": "xss-rule", "record_types": ["inspection"], "consumers": ["jinan"], "purpose": hostile,
            "fields": ["action_name"]}
    assert (await gw.call("POST", "/v1/admin/sharing", json.dumps(rule).encode(), bearer=ADMIN_TOKEN))[0] == 201
    await gw.push("amr", [inspection(1)])
    for path in ("/console/events", "/console/events?purpose=x&record_id=" + hostile, "/console/trail?record_id=in-1"):
        _, page = await browser.get(path)
        assert hostile not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    answer = await browser.client.get("/console/events")
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


async def test_no_page_shows_a_payload_value(console: Any) -> None:
    browser, gw, _ = console
    await browser.sign_in()
    await _pushed(gw)
    for path in ("/console/", "/console/events", "/console/trail?source=amr&record_id=in-1", "/console/problems"):
        status, page = await browser.get(path)
        assert status == 200 and MARKER not in page, path


async def test_every_look_is_itself_logged(console: Any) -> None:
    browser, _, _ = console
    await browser.sign_in()
    for path in ("/console/", "/console/events?event=stored", "/console/trail?record_id=in-1", "/console/problems"):
        await browser.get(path)
    store = browser.client.app[STORE].store
    looks = [e for e in store.log.entries() if e.event == "audit_query"]
    assert [e.reason.split()[1] for e in looks] == ["overview", "overview", "events", "trail", "problems"]
    assert {e.counterpart for e in looks} == {"sec"}


async def test_a_tampered_chain_is_flagged_after_verification(console: Any, tmp_path: Path) -> None:
    browser, gw, _ = console
    await browser.sign_in()
    await _pushed(gw)
    app = browser.client.app
    await browser.post("/console/verify")
    await app[CONSOLE].chain.stop()
    _, page = await browser.get("/console/")
    assert 'class="chain ok"' in page
    db = sqlite3.connect(tmp_path / "supex.db")
    db.execute("UPDATE exchange_log SET record_id = 'forged' WHERE seq = 3")
    db.commit()
    db.close()
    await browser.post("/console/verify")
    await app[CONSOLE].chain.stop()
    _, page = await browser.get("/console/events")
    assert 'class="chain broken"' in page and "第 3 条" in page


async def test_the_language_switches_and_stays_on_the_console(console: Any) -> None:
    browser, _, _ = console
    await browser.sign_in()
    _, page = await browser.get("/console/language?to=en&back=/console/problems")
    assert "<h1>Problems</h1>" in page
    answer = await browser.client.get("/console/language?to=zh&back=https://elsewhere.example/", allow_redirects=False)
    assert answer.headers["Location"] == "/console/"


async def test_problems_list_denials_by_rule(console: Any) -> None:
    browser, gw, _ = console
    await browser.sign_in()
    assert (await gw.push("amr", [{**inspection(1), "sharing": "conditional"}]))[0] == 200
    status, page = await browser.get("/console/problems")
    assert status == 200 and 'id="denials"' in page and "conditional sharing and no rule" in page
