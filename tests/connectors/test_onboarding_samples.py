"""The onboarding samples — an 应急管理 XML with attributes and nested lists, a 税务 paged JSON API,
a 市场监管 workbook with a title row and a two-row header, and the same as GB18030 CSV — map by
their mapping files alone to exactly the golden records, rejecting exactly the bad rows with their
own codes; and they go through a gateway, pushed and polled, and are pulled back out."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from aiohttp.test_utils import TestClient

from connectors.testing import PagedApiSimulator
from gateway.config import load_config, resolve_mapping
from gateway.http.app import create_app
from gateway.http.context import SOURCES, STORE
from mappings import map_stream
from schemas import Validator
from tests.conftest import SAMPLES
from tests.gateway.conftest import CONFIG_TEXT, NOW, SECRETS, Signed

GOLDEN = Path(__file__).parents[1] / "golden"
CASES = [
    # mapping, sample, the rejected row and the codes it is rejected with
    ("emergency.inspection", "emergency_inspections.xml", "YJJC-2024-0003", {("/region_code", "mapping"),
                                                                             ("/data/findings/0/deadline", "mapping")}),
    ("tax.penalty", "tax_penalties.page1.json", "SWCF-2024-0003",
     {("/data/subject/representative/cert_no", "id_checksum")}),
    ("market.license", "market_licences.xlsx", "JY13701040034567", {("/data/subject/cert_no", "uscc_checksum")}),
    ("market.license_csv", "market_licences.gb18030.csv", "JY13701040034567",
     {("/data/subject/cert_no", "uscc_checksum")}),
]


@pytest.mark.parametrize(("mapping", "sample", "bad_id", "codes"), CASES, ids=[c[0] for c in CASES])
def test_a_sample_maps_to_exactly_its_golden_records(mapping: str, sample: str, bad_id: str,
                                                      codes: set[tuple[str, str]]) -> None:
    compiled = resolve_mapping(str(SAMPLES / f"{mapping}.toml"))
    results = list(map_stream(compiled, Validator(), io.BytesIO((SAMPLES / sample).read_bytes())))
    golden = [json.loads(line) for line in (GOLDEN / f"{mapping}.ndjson").read_text(encoding="utf-8").splitlines()]
    assert [r.record for r in results if r.verdict.ok] == golden
    (bad,) = [r for r in results if not r.verdict.ok]
    assert bad.record_id == bad_id and {(e.path, e.code) for e in bad.verdict.errors} == codes


def test_the_licence_workbook_and_its_csv_export_give_the_same_records() -> None:
    assert (GOLDEN / "market.license.ndjson").read_text() == (GOLDEN / "market.license_csv.ndjson").read_text()


# ---- through a gateway ------------------------------------------------------------------------------------

SECRET = "secret-onboard-0123456789abcd"
Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]


def _config(tmp_path: Path, tax_url: str) -> Any:
    connectors = "".join(f"""
[[connector]]
id = "{cid}"
name = "{name}"
kind = "http_json"
department_code = "{dept}"
region_code = "370000"
produces = ["{produces}"]
mapping = "{SAMPLES / mapping}.toml"
{extra}""" for cid, name, dept, produces, mapping, extra in (
        ("emergency", "应急管理局", "11370000FE1KM2U90Y", "inspection", "emergency.inspection", ""),
        ("market", "市场监管局", "11370000FE1KM2U90Y", "license", "market.license", ""),
        ("tax", "税务局", "11370000FE1KM2U90Y", "penalty", "tax.penalty",
         f'poll_url = "{tax_url}/records"\npoll_paging = "page"\npoll_page_param = "pageNo"\n'
         'poll_size_param = "pageSize"\npoll_limit = 2\npoll_total = "data.total"\n'
         'poll_watermark_param = "updateTimeStart"\npoll_watermark_field = "updateTime"\n')))
    sink = '\n[[connector]]\nid = "city"\nname = "全部接收"\ndepartment_code = "11370000AL7LL93D6K"\n' \
           'region_code = "370000"\nconsumes = ["inspection", "license", "penalty"]\n'
    path = tmp_path / "supex.toml"
    path.write_text(CONFIG_TEXT + connectors + sink, encoding="utf-8")
    secrets = {**SECRETS, "emergency": SECRET, "market": SECRET, "tax": SECRET, "city": SECRET}
    return load_config(path, environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in secrets.items()})


@pytest.fixture
async def tax_api() -> AsyncIterator[PagedApiSimulator]:
    rows = json.loads((SAMPLES / "tax_penalties.page1.json").read_text(encoding="utf-8"))["data"]["list"]
    async with PagedApiSimulator("tax", SECRET, rows=rows, clock=lambda: NOW) as system:
        yield system


async def test_pushed_and_polled_exports_reach_a_consumer_as_the_golden_records(
        tmp_path: Path, aiohttp_client: Client, tax_api: PagedApiSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, secret in (("emergency", SECRET), ("market", SECRET), ("city", SECRET)):
        monkeypatch.setitem(SECRETS, name, secret)  # Signed signs with the test secrets
    client = await aiohttp_client(create_app(_config(tmp_path, tax_api.url), clock=lambda: NOW, deliver=False))
    gw = Signed(client)
    for connector, sample, content_type in (
            ("emergency", "emergency_inspections.xml", "application/xml"),
            ("market", "market_licences.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")):
        status, body = await gw.call("POST", "/v1/records", (SAMPLES / sample).read_bytes(), connector=connector,
                                     content_type=content_type)
        assert status == 200 and (body["accepted"], body["rejected"]) == (2, 1), body
    poller = client.app[SOURCES].pollers["tax"]
    assert await poller.poll_once() == 3
    assert [p["pageNo"] for p in tax_api.polls] == ["1", "2"]
    assert client.app[STORE].store.counts()["records"] == 6
    status, page = await gw.call("GET", "/v1/inbox?limit=100", connector="city")
    assert status == 200
    pulled = {r["record_id"]: r for r in page["records"]}
    for mapping in ("emergency.inspection", "market.license", "tax.penalty"):
        for line in (GOLDEN / f"{mapping}.ndjson").read_text(encoding="utf-8").splitlines():
            golden = json.loads(line)
            got = pulled[golden["record_id"]]
            shown = {k: got[k] for k in golden if k != "data"}
            assert shown == {k: v for k, v in golden.items() if k != "data"}
            if mapping != "tax.penalty":
                assert got["data"] == golden["data"]
            else:  # the representative is personal data: masked unless a sharing rule lifts it
                person = got["data"]["subject"]["representative"]
                assert person["name"].endswith("*") and "*" in person["cert_no"]


async def test_a_bad_row_of_a_pushed_workbook_is_quarantined_and_the_others_stored(
        tmp_path: Path, aiohttp_client: Client, tax_api: PagedApiSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """As for a CSV row: a row with a value under no header is that row's problem, not the file's."""
    monkeypatch.setitem(SECRETS, "market", SECRET)
    client = await aiohttp_client(create_app(_config(tmp_path, tax_api.url), clock=lambda: NOW, deliver=False))
    book = openpyxl.load_workbook(SAMPLES / "market_licences.xlsx")
    book.active.cell(row=5, column=12, value="多出的一列")
    body = io.BytesIO()
    book.save(body)
    status, answer = await Signed(client).call(
        "POST", "/v1/records", body.getvalue(), connector="market",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert status == 200 and (answer["accepted"], answer["rejected"]) == (1, 2), answer
    (beyond,) = [r for r in answer["results"] if r["index"] == 1]
    assert beyond["status"] == "rejected" and "column 12, which has no header" in beyond["errors"][0]["message"]
