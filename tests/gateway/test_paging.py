"""Polling a paged JSON API: every page of a round, the page size and parameter names from the
configuration, an incremental watermark, the reported total checked, and a feed that fails or
whose records are all rejected said out loud."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from connectors.testing import PagedApiSimulator
from gateway.config import load_config
from gateway.exceptions import ConfigError, SourceError
from gateway.flow.sources import SourcePoller
from gateway.http.app import create_app
from gateway.http.context import SOURCES, STORE
from tests.gateway.conftest import CONFIG_TEXT, NOW, SECRETS

SECRET = "secret-tax-0123456789abcdefgh"
BASE_MS = 1_709_600_000_000  # 2024-03-05 08:53:20 +08:00

MAPPING = """
[mapping]
name = "test.tax_pages"
record_type = "inspection"
format = "json"

[source]
record = "data.list"
envelope = { path = "code", equals = 0, message = "msg" }

[fields]
record_id = "checkId"
op = { const = "upsert" }
occurred_at = { from = "updateTime", as = "datetime", epoch = "ms" }
region_code = "areaCode"
"data.action_code" = "checkId"
"data.matter_code" = { const = "37012345678901" }
"data.implementing_org.name" = { const = "国家税务总局济南市历下区税务局" }
"data.subject.kind" = { const = "2" }
"data.subject.name" = "taxpayerName"
"data.subject.cert_type" = { const = "001" }
"data.subject.cert_no" = "creditCode"
"data.result.code" = { const = "01" }
"data.inspected_at" = { from = "updateTime", as = "datetime", epoch = "ms" }
"data.inspectors" = { each = "checkers", fields = { name = "name", cert_no = "certNo" } }
"""


def _row(n: int, **changes: Any) -> dict[str, Any]:
    return {"checkId": f"SW-{n:04d}", "updateTime": BASE_MS + n * 60_000, "areaCode": "370102",
            "taxpayerName": "济南鲁达食品有限公司", "creditCode": "91370102CXCY5NUM1A",
            "checkers": [{"name": "张伟", "certNo": "3701000001"}, {"name": "李娜", "certNo": "3701000002"}], **changes}


def _config(tmp_path: Path, url: str, extra: str = "", paging: str = "page") -> Any:
    (tmp_path / "tax.toml").write_text(MAPPING, encoding="utf-8")
    text = CONFIG_TEXT + f"""
[[connector]]
id = "tax"
name = "税务 检查接口"
kind = "http_json"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["inspection"]
mapping = "tax.toml"
poll_url = "{url}/records"
poll_paging = "{paging}"
poll_page_param = "{'pageNo' if paging == 'page' else 'offset'}"
poll_size_param = "pageSize"
poll_limit = 2
poll_total = "data.total"
poll_max_pages = 10
poll_timeout_seconds = 0.5
{extra}"""
    path = tmp_path / "supex.toml"
    path.write_text(text, encoding="utf-8")
    env = {f"SUPEX_SECRET_{k.upper()}": v for k, v in {**SECRETS, "tax": SECRET}.items()}
    return load_config(path, environ=env)


Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]
WATERMARK = 'poll_watermark_param = "updateTimeStart"\npoll_watermark_field = "updateTime"\n'


async def _no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def api() -> AsyncIterator[PagedApiSimulator]:
    async with PagedApiSimulator("tax", SECRET, rows=[_row(n) for n in range(1, 6)], clock=lambda: NOW) as system:
        yield system


async def _poller(tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator, extra: str = WATERMARK,
                  paging: str = "page") -> tuple[SourcePoller, TestClient[Any, Any]]:
    config = _config(tmp_path, api.url, extra, paging)
    client = await aiohttp_client(create_app(config, clock=lambda: NOW, deliver=False))
    poller: SourcePoller = client.app[SOURCES].pollers["tax"]
    poller._sleep = _no_sleep
    return poller, client


def _stored(client: TestClient[Any, Any]) -> int:
    return int(client.app[STORE].store.counts()["records"])


async def test_every_page_of_a_round_is_read_and_the_watermark_makes_the_next_round_incremental(
        tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator) -> None:
    poller, client = await _poller(tmp_path, aiohttp_client, api)
    assert await poller.poll_once() == 5
    assert [(p["pageNo"], p["pageSize"], p.get("updateTimeStart")) for p in api.polls] == [
        ("1", "2", None), ("2", "2", None), ("3", "2", None)]  # a short page ends the round
    assert _stored(client) == 5 and poller.status.last_error is None
    api.polls.clear()
    api.rows.append(_row(9))
    assert await poller.poll_once() == 1
    assert [(p["pageNo"], p.get("updateTimeStart")) for p in api.polls] == [("1", str(BASE_MS + 5 * 60_000))]
    assert _stored(client) == 6


async def test_a_page_whose_envelope_says_it_failed_is_refused_and_said(
        tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator) -> None:
    """Page 2 answers code 500: the round stops there, saying so with the system's own message; the
    watermark is not moved, so the next round reads from where it was."""
    poller, client = await _poller(tmp_path, aiohttp_client, api)
    api.fail_page(2)
    with pytest.raises(SourceError, match="code = 500, msg: 数据库连接超时"):
        await poller.poll_once()
    assert "数据库连接超时" in (poller.status.last_error or "") and poller.status.failed_rounds == 1
    assert _stored(client) == 2  # page 1, stored before
    assert client.app[STORE].store.records.source_mark("tax", "watermark") is None
    metrics = await (await client.get("/metrics")).text()
    assert 'supex_source_failed_rounds_total{connector="tax"} 1.0' in metrics


async def test_a_total_that_does_not_match_the_pages_is_an_error(
        tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator) -> None:
    poller, _ = await _poller(tmp_path, aiohttp_client, api)
    api.misreport_total(7)
    with pytest.raises(SourceError, match=r"reported a total of 7 records \(data.total\) but its pages held 5"):
        await poller.poll_once()


async def test_a_round_whose_records_are_all_rejected_shows_last_error(
        tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator) -> None:
    api.rows = [_row(n, creditCode="91370102CXCY5NUM1B") for n in range(1, 4)]  # a wrong check character
    poller, client = await _poller(tmp_path, aiohttp_client, api)
    assert await poller.poll_once() == 3
    assert "all 3 records of the round were rejected" in (poller.status.last_error or "")
    assert poller.status.rejected == 3 and _stored(client) == 0
    listed = (await (await client.get("/metrics")).text())
    assert 'supex_source_rejected_records_total{connector="tax"} 3.0' in listed


async def test_offset_paging_asks_for_the_next_offset(
        tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator) -> None:
    poller, client = await _poller(tmp_path, aiohttp_client, api, paging="offset")
    assert await poller.poll_once() == 5
    assert [p["offset"] for p in api.polls] == ["0", "2", "4"]
    assert _stored(client) == 5


async def test_link_paging_follows_the_next_address_on_the_same_host_only(
        tmp_path: Path, aiohttp_client: Client, api: PagedApiSimulator) -> None:
    poller, client = await _poller(tmp_path, aiohttp_client, api, 'poll_next = "data.next"\n', paging="link")
    assert await poller.poll_once() == 5
    assert [p.get("pageNo") for p in api.polls] == [None, "2", "3"]
    assert _stored(client) == 5
    with pytest.raises(SourceError, match=r"is not on 127\.0\.0\.1"):
        poller._next_link(poller.url, "http://elsewhere.example/records?pageNo=2")


def test_a_watermark_needs_both_its_parameter_and_its_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="poll_watermark_param and poll_watermark_field go together"):
        _config(tmp_path, "http://127.0.0.1:9", 'poll_watermark_param = "updateTimeStart"\n')
