"""``supex connector test``: the acceptance suite against a live gateway and simulated systems."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.testing import InternetPlusSimulator
from gateway.acceptance import ConnectorSuite, _not_run, _with_record_id
from gateway.cli import main
from gateway.config import Config, load_config
from gateway.http.app import create_app
from mappings import compile_text
from tests.conftest import served_in_thread
from tests.gateway.conftest import CONFIG_TEXT, SECRETS, endpoints

SUITE_SECRETS = {**SECRETS, "ipush": "secret-ipush-0123456789abcde", "careless": "secret-careless-0123456789a"}


def _config(tmp_path: Path, endpoints_by_id: dict[str, str]) -> Config:
    extra = "".join(f"""
[[connector]]
id = "{cid}"
name = "推送接收 {cid}"
kind = "internet_plus"
department_code = "11370000R3BKC8GB5G"
region_code = "370000"
produces = ["inspection"]
consumes = ["penalty"]
delivery = "push"
endpoint = "{url}"
identifiers = "lenient"
""" for cid, url in endpoints_by_id.items())
    path = tmp_path / "supex.toml"
    path.write_text(CONFIG_TEXT + extra, encoding="utf-8")
    return load_config(path, environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in SUITE_SECRETS.items()})


async def _careless(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})  # takes anything, signed or not


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Config, str, InternetPlusSimulator]]:
    """A gateway on a real port, an Internet+ simulator behind one push connector and a receiver
    that checks no signature behind another."""
    async with InternetPlusSimulator("ipush", SUITE_SECRETS["ipush"]) as system, \
            endpoints({"careless": _careless}) as urls:
        config = _config(tmp_path, {"ipush": system.url + "/in", "careless": urls["careless"]})
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server()
        try:
            yield config, str(server.make_url("")).rstrip("/"), system
        finally:
            await server.close()


def _outcomes(results: list[Any]) -> dict[str, str]:
    return {r.name.split(" / ")[1]: r.outcome for r in results}


async def test_a_pull_connector_passes_every_check_that_applies(gateway: Any) -> None:
    config, url, _ = gateway
    outcomes = _outcomes(await ConnectorSuite(config, "jinan", url).run())
    assert outcomes.pop("samples in the connector's format are accepted") == "skip"  # standard records
    assert outcomes.pop("the connector's endpoint verifies signatures") == "skip"  # it pulls
    assert outcomes.pop("re-pushing is idempotent") == "skip"  # it produces nothing…
    assert {outcomes.pop(n) for n in ("a higher version applies", "a stale version does not apply",
                                      "a delete is stored", "the record's trail shows what happened",
                                      "a full batch", "encoding and format edge cases",
                                      "sample records map and validate")} == {"skip"}
    assert set(outcomes.values()) == {"pass"}, outcomes


async def test_a_producer_passes_the_lifecycle_checks(gateway: Any) -> None:
    config, url, _ = gateway
    results = await ConnectorSuite(config, "amr", url, run_id="t1").run()
    failed = [(r.name, r.detail) for r in results if r.outcome == "fail"]
    assert failed == []
    details = {r.name.split(" / ")[1]: r.detail for r in results}
    assert details["re-pushing is idempotent"] == "conntest-t1-1: accepted, then duplicate"
    assert details["a full batch"].startswith("50 records")  # the gateway's max_records here


async def test_an_xml_connector_gets_its_format_and_hostile_xml_checked(gateway: Any) -> None:
    config, url, _ = gateway
    results = {r.name.split(" / ")[1]: r for r in await ConnectorSuite(config, "eo", url).run()}
    assert results["samples in the connector's format are accepted"].detail == "2 records as XML"
    edges = results["encoding and format edge cases"]
    assert edges.outcome == "pass"
    assert "XML external entity refused" in edges.detail and "XML entity expansion refused" in edges.detail


async def test_a_push_connector_has_its_endpoint_and_signature_check_proved(gateway: Any) -> None:
    config, url, system = gateway
    results = {r.name.split(" / ")[1]: r for r in await ConnectorSuite(config, "ipush", url).run()}
    assert [n for n, r in results.items() if r.outcome != "pass"] == []
    assert results["the connector's endpoint verifies signatures"].detail == "401"
    assert system.refused[-1].problem == "wrong signature"
    assert system.received[-1].records == []  # the signed empty push in its own JSON rows


async def test_an_endpoint_that_takes_unsigned_pushes_fails_the_suite(gateway: Any) -> None:
    config, url, _ = gateway
    results = {r.name.split(" / ")[1]: r for r in await ConnectorSuite(config, "careless", url).run()}
    verdict = results["the connector's endpoint verifies signatures"]
    assert verdict.outcome == "fail"
    assert "must check X-Supex-Signature" in verdict.detail


async def test_a_wrong_secret_fails_every_signed_check_with_a_hint(gateway: Any) -> None:
    config, url, _ = gateway
    wrong = config.model_copy(update={"secrets": {**config.secrets, "amr": "0" * 32}})
    results = {r.name.split(" / ")[1]: r for r in await ConnectorSuite(wrong, "amr", url).run()}
    signed = results["a signed request is accepted"]
    assert signed.outcome == "fail" and "SUPEX_SECRET_AMR" in signed.detail
    assert results["re-pushing is idempotent"].outcome == "fail"
    assert results["a higher version applies"].outcome == "not run"  # it applies, but needs the record pushed


async def test_an_unreachable_gateway_fails_instead_of_crashing(gateway: Any) -> None:
    config, _, _ = gateway
    results = await ConnectorSuite(config, "amr", "http://127.0.0.1:9").run()
    assert results[0].outcome == "fail" and "cannot connect" in results[0].detail


# ---- the command -----------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The gateway on its own thread and loop, so that the command can run its own."""
    with served_in_thread(create_app(_config(tmp_path, {}))) as url:
        yield tmp_path / "supex.toml", url


def test_the_command_prints_json_lines_and_exits_by_the_outcome(
        served: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, url = served
    monkeypatch.setenv("SUPEX_SECRET_AMR", SUITE_SECRETS["amr"])  # only the tested connector's secret
    assert main(["connector", "test", "amr", "--config", str(path), "--url", url, "--json"]) == 0
    out = capsys.readouterr().out  # the gateway's own log lines are there too, from its thread
    lines = [json.loads(line) for line in out.splitlines() if line.startswith('{"check"')]
    assert len(lines) == 16 and {line["outcome"] for line in lines} == {"pass", "skip"}
    monkeypatch.setenv("SUPEX_SECRET_AMR", "0" * 32)
    assert main(["connector", "test", "amr", "--config", str(path), "--url", url]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "failed" in out


def test_the_command_names_an_unknown_connector(served: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    path, url = served
    assert main(["connector", "test", "nobody", "--config", str(path), "--url", url]) == 2
    assert "no connector 'nobody'" in capsys.readouterr().err


# ---- safe against a live gateway -----------------------------------------------------------------------


async def test_the_suite_pushes_the_examples_under_its_own_ids_and_changes_no_earlier_record(gateway: Any) -> None:
    """The mapping's examples (a penalty and a delete of another) are pushed as conntest-<run>-… records:
    the connector's own records of those ids stay as they were, and every record left is the run's."""
    config, url, _ = gateway
    suite = ConnectorSuite(config, "eo", url, run_id="safe")
    example = suite.mapping.definition.example[0] if suite.mapping else None
    assert example is not None and "11370000FE1KM2U90Y-CF-00000" in str(example.source)
    results = {r.name.split(" / ")[1]: r for r in await suite.run()}
    assert results["samples in the connector's format are accepted"].outcome == "pass"
    assert suite.left and all(rid.startswith("conntest-safe-") for rid in suite.left)
    assert "11370000FE1KM2U90Y-CF-00000" not in suite.left and "1137000081D905EA9B-CF-00009" not in suite.left


def test_an_example_whose_id_cannot_be_rewritten_is_not_pushed() -> None:
    """Where the record id is not a plain read, the example is not pushed under its real id: not run."""
    mapping = compile_text("""
[mapping]
name = "t.composed"
record_type = "inspection"
format = "json"
[fields]
record_id = { parts = [{ from = "a" }, { from = "b" }], join = "-" }
""")
    assert _with_record_id(mapping, {"a": "X", "b": "1"}, "conntest-r-1") is None
    plain = compile_text('[mapping]\nname = "t.plain"\nrecord_type = "inspection"\nformat = "json"\n'
                         '[fields]\nrecord_id = "head.id"\n')
    assert _with_record_id(plain, {"head": {"id": "REAL-1"}}, "conntest-r-1") == {"head": {"id": "conntest-r-1"}}


def test_a_check_that_applies_but_cannot_run_fails_the_command(
        served: tuple[Path, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer whose idempotency check fails leaves the version checks unable to run: they are listed
    as not run, with why, and the command exits 1 even if nothing else failed."""
    path, url = served
    monkeypatch.setenv("SUPEX_SECRET_AMR", SUITE_SECRETS["amr"])

    async def refuse(self: ConnectorSuite) -> str:
        raise _not_run("needs a record")

    monkeypatch.setattr(ConnectorSuite, "higher_version_applies", refuse)
    assert main(["connector", "test", "amr", "--config", str(path), "--url", url]) == 1
    out = capsys.readouterr().out
    assert "1 not run" in out and "not run: " in out and "needs a record" in out
    assert "left in the store" in out and "no record of the connector's own was changed" in out
