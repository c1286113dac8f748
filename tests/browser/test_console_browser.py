"""The review console in real headless Chromium (Debian's, driven by Playwright): sign in, search,
open a trail, see a tampered chain flagged, switch language, and hostile text shown as text.
Screenshots go to ``test-artifacts/console/`` (``SUPEX_TEST_ARTIFACTS`` to put them elsewhere)."""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.signing import signature_headers
from gateway.config import load_config
from gateway.http.app import create_app
from tests.conftest import served_in_thread
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, CONFIG_TEXT, SECRETS, inspection

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

CHROMIUM = os.environ.get("SUPEX_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SUPEX_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "console"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless; the tests are skipped, saying why, where it cannot start."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SUPEX_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        except Exception as exc:  # noqa: BLE001 - any failure to start is a reason to skip, stated
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        yield browser
        browser.close()


def _call(url: str, method: str, path: str, body: bytes = b"", *, connector: str | None = None,
          bearer: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if connector:
        headers.update(signature_headers(connector, SECRETS[connector], method, path, body))
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url + path, data=body or None, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A gateway with some traffic: records stored and routed under a rule whose purpose is hostile."""
    (tmp_path / "supex.toml").write_text(CONFIG_TEXT, encoding="utf-8")
    config = load_config(tmp_path / "supex.toml", environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()})
    with served_in_thread(create_app(config)) as url:
        rule = {"id": "to-jinan", "record_types": ["inspection"], "consumers": ["jinan"], "purpose": HOSTILE,
                "fields": ["action_name", "subject.name"]}
        _call(url, "POST", "/v1/admin/sharing", json.dumps(rule).encode(), bearer=ADMIN_TOKEN)
        records = [inspection(n) for n in range(3)]
        _call(url, "POST", "/v1/records", json.dumps(records, ensure_ascii=False).encode(), connector="amr")
        _call(url, "GET", "/v1/inbox?limit=10", connector="jinan")
        yield url, tmp_path / "supex.db"


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_auditor_reviews_the_log_in_the_browser(chromium: Any, gateway: tuple[str, Path]) -> None:
    url, database = gateway
    context = chromium.new_context(locale="zh-CN")
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(url + "/console/")
    assert page.url.endswith("/console/login")
    page.fill("input[name=token]", "wrong-token")
    page.click("#sign-in")
    assert "令牌无效" in page.inner_text(".error")
    page.fill("input[name=token]", AUDITOR_TOKEN)
    page.click("#sign-in")
    page.wait_for_selector("#entries")
    page.wait_for_selector(".chain.ok")
    _shot(page, "1-overview")

    page.goto(url + "/console/events")
    page.select_option("select[name=event]", "routed")
    page.click("#search")
    rows = page.locator("table.entries tbody tr")
    assert rows.count() == 3 and all(t == "routed" for t in rows.locator(".tag").all_inner_texts())
    assert HOSTILE in page.inner_text("table.entries")  # the purpose, shown as text
    _shot(page, "2-search")

    page.click("table.entries tbody tr:first-child td:nth-child(7) a")
    page.wait_for_selector("#trail-title")
    tags = page.locator("table.entries .tag").all_inner_texts()
    assert tags[:3] == ["received", "stored", "routed"] and "delivered" in tags
    _shot(page, "3-trail")

    db = sqlite3.connect(database)
    db.execute("UPDATE exchange_log SET reason = 'forged' WHERE seq = 4")
    db.commit()
    db.close()
    page.goto(url + "/console/")
    page.click("#verify-now")
    for _ in range(50):
        if page.locator(".chain.broken").count():
            break
        page.wait_for_timeout(100)  # the verification runs in the background
        page.reload()
    banner = page.inner_text(".chain.broken")
    assert "第 4 条" in banner
    _shot(page, "4-tampered")

    page.click("#language")
    assert page.inner_text("h1") == "Overview"
    assert "BROKEN at entry 4" in page.inner_text(".chain.broken")
    _shot(page, "5-english")
    assert dialogs == []  # no script of anybody's ran
    context.close()
