"""Connector kinds as modules, and the simulators that play the external systems."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

import connectors.kinds as kinds_package
from connectors.kinds import UnknownKindError, connector_kind, kind_names
from connectors.signing import signature_headers
from connectors.testing import (
    DepartmentSimulator,
    DoubleRandomSimulator,
    EnforcementOversightSimulator,
    InternetPlusSimulator,
    simulator_for,
)
from gateway.config import load_config
from tests.conftest import SAMPLES
from tests.gateway.conftest import CONFIG_TEXT, SECRETS

SECRET = "secret-sim-0123456789abcdef"


def test_the_five_kinds_of_the_spec_are_modules() -> None:
    assert kind_names() == ["double_random", "enforcement_oversight", "file_drop", "http_json", "internet_plus"]
    assert connector_kind("internet_plus").mapping_for("penalty") == "internet_plus.penalty"
    assert connector_kind("http_json").mapping is None
    assert connector_kind("file_drop").sources == {"file"}
    with pytest.raises(UnknownKindError, match="known: double_random"):
        connector_kind("telex")


@pytest.fixture
def custom_kind(tmp_path: Path) -> Iterator[None]:
    """A kind added as one more module of the package (here from a folder of its own)."""
    folder = tmp_path / "more_kinds"
    folder.mkdir()
    (folder / "hotline.py").write_text(
        'from connectors.kinds import ConnectorKind\n\n'
        'KIND = ConnectorKind(name="hotline_12345", title="12345 热线", description="The 12345 hotline system.",\n'
        '                     mapping="internet_plus.check_action")\n', encoding="utf-8")
    kinds_package.__path__.append(str(folder))
    kinds_package._registry.cache_clear()
    yield
    kinds_package.__path__.remove(str(folder))
    kinds_package._registry.cache_clear()
    sys.modules.pop("connectors.kinds.hotline", None)


@pytest.mark.usefixtures("custom_kind")
def test_a_new_kind_is_one_module_and_the_gateway_takes_it_unchanged(tmp_path: Path) -> None:
    assert "hotline_12345" in kind_names()
    path = tmp_path / "supex.toml"
    path.write_text(CONFIG_TEXT + '\n[[connector]]\nid = "hotline"\nname = "12345"\nkind = "hotline_12345"\n'
                    'department_code = "11370000FE1KM2U90Y"\nregion_code = "370000"\n', encoding="utf-8")
    env = {f"SUPEX_SECRET_{k.upper()}": v for k, v in {**SECRETS, "hotline": SECRET}.items()}
    assert load_config(path, environ=env).connectors()["hotline"].mapping_name == "internet_plus.check_action"


def test_each_kind_has_its_simulator() -> None:
    assert simulator_for("internet_plus") is InternetPlusSimulator
    assert simulator_for("enforcement_oversight") is EnforcementOversightSimulator
    assert simulator_for("double_random") is DoubleRandomSimulator
    assert simulator_for("http_json") is DepartmentSimulator
    assert simulator_for("file_drop") is DepartmentSimulator


async def _post(url: str, body: bytes, content_type: str, secret: str = SECRET,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    sent = headers or signature_headers("sim", secret, "POST", "/in", body)
    async with aiohttp.ClientSession() as session, \
            session.post(url + "/in", data=body, headers={**sent, "Content-Type": content_type},
                         allow_redirects=False) as answer:
        return answer.status, sent


async def test_a_simulator_takes_signed_pushes_in_its_format_and_refuses_forged_or_replayed_ones() -> None:
    async with EnforcementOversightSimulator("sim", SECRET) as system:
        xml = (SAMPLES / "penalties.xml").read_bytes()
        status, headers = await _post(system.url, xml, "application/xml")
        assert status == 200
        assert next(r["CF_ID"] for r in system.records) == "11370000FE1KM2U90Y-CF-00000"
        assert (await _post(system.url, xml, "application/xml", headers=headers))[0] == 401  # replayed
        assert (await _post(system.url, xml, "application/xml", secret="another-secret-0123456789"))[0] == 401
        assert [r.problem for r in system.refused] == ["nonce used before (a replay)", "wrong signature"]
        assert (await _post(system.url, b"<not xml", "application/xml"))[0] == 400


async def test_a_simulator_reads_gb18030_csv_and_json_rows() -> None:
    async with DoubleRandomSimulator("sim", SECRET) as system:
        status, _ = await _post(system.url, (SAMPLES / "results.gb18030.csv").read_bytes(), "text/csv")
        assert status == 200 and len(system.records) == 12
        assert system.records[0]["抽查任务编号"] == "RW202600000"
    async with InternetPlusSimulator("sim", SECRET) as system:
        assert (await _post(system.url, b"[1, 2]", "application/json"))[0] == 400


async def test_a_simulator_misbehaves_on_request() -> None:
    async with DepartmentSimulator("sim", SECRET) as system:
        system.fail_next(2, status=500)
        statuses = [(await _post(system.url, b"[]", "application/json"))[0] for _ in range(3)]
        assert statuses == [500, 500, 200]
        system.behave("redirect")
        assert (await _post(system.url, b"[]", "application/json"))[0] == 302
        with pytest.raises(ValueError, match="unknown behaviour"):
            system.behave("sulk")


async def test_a_simulator_serves_its_rows_in_pages_with_a_cursor() -> None:
    rows = [{"抽查任务编号": f"RW{n}", "检查对象名称": "某公司"} for n in range(3)]
    async with DoubleRandomSimulator("sim", SECRET, rows=rows) as system, aiohttp.ClientSession() as session:
        path = "/records?since=1&limit=5"
        headers = signature_headers("sim", SECRET, "GET", path, b"", now=time.time)
        async with session.get(system.url + path, headers=headers) as answer:
            body = await answer.read()
            assert answer.headers["X-Supex-Next-Cursor"] == "3"
        assert [r["抽查任务编号"] for r in system.parse(body, "text/csv")] == ["RW1", "RW2"]
        assert body.decode("gb18030").startswith("抽查任务编号")
        async with session.get(system.url + path) as answer:
            assert answer.status == 401  # polls are signed too
