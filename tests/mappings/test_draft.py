"""``supex mapping draft``: a sample export's fields, the standard fields they plainly are, and a
commented mapping file the team finishes — a guess only where the name makes it clear."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pytest

from gateway.cli import main
from mappings import compile_text
from mappings.draft import draft_mapping, read_sample
from tests.conftest import SAMPLES


def _draft(fmt: str, sample: str, record_type: str, **options: int) -> tuple[str, dict[str, object]]:
    shape = read_sample(fmt, io.BytesIO((SAMPLES / sample).read_bytes()), **options)
    text = draft_mapping(shape, name="draft.t", record_type=record_type, sample=sample)
    return text, tomllib.loads(text)


def test_a_two_row_header_is_drafted_by_its_groups() -> None:
    text, parsed = _draft("xlsx", "market_licences.xlsx", "license", skip_rows=1, header_rows=2)
    fields = parsed["fields"]
    assert isinstance(fields, dict)
    assert fields["data.subject.name"] == "被许可人/名称"
    assert fields["data.subject.cert_no"] == {"from": "被许可人/统一社会信用代码", "halfwidth": True}
    assert fields["data.issuing_org.name"] == "许可机关/名称"
    assert fields["data.issuing_org.code"] == {"from": "许可机关/统一社会信用代码", "halfwidth": True}
    assert fields["data.valid_to"] == {"from": "有效期至", "as": "date", "epoch": "excel"}
    assert parsed["source"] == {"skip_rows": 1, "header_rows": 2}
    assert "# e.g. 济南鲁达食品有限公司" in text
    compile_text(text)  # a draft loads; its example says what is still to map


def test_a_json_page_gets_its_record_path_and_envelope() -> None:
    text, parsed = _draft("json", "tax_penalties.page1.json", "penalty")
    assert parsed["source"] == {"record": "data.list", "envelope": {"path": "code", "equals": 0, "message": "msg"}}
    fields = parsed["fields"]
    assert isinstance(fields, dict)
    assert fields["data.subject.cert_no"] == {"from": "creditCode", "halfwidth": True}
    assert fields["data.subject.representative.cert_no"] == {"from": "legalPersonIdNo", "halfwidth": True}
    assert fields["occurred_at"] == fields["data.decided_at"] == {"from": "decideTime", "as": "datetime",
                                                                  "epoch": "ms"}
    assert fields["data.decision_no"] == "decisionNo"
    assert '# "data.?" = "fineAmount"' in text  # 分 or 元? not guessed


def test_an_xml_sample_names_its_record_element_and_its_lists() -> None:
    text, parsed = _draft("xml", "emergency_inspections.xml", "inspection")
    assert parsed["source"] == {"record": "x:ZFJC", "namespaces": {"x": "urn:sd:yjgl:zfjc:1"}}
    assert '"data.?" = {each = "x:JCRY", fields = {XM = "string(@XM)", ZJH = "string(@ZJH)"}}' in text
    example = parsed["example"]
    assert isinstance(example, list) and example[0]["source"].startswith("<ZFJC")


def test_the_command_lists_the_fields_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "draft.toml"
    sample = str(SAMPLES / "results.gb18030.csv")
    assert main(["mapping", "draft", "--format", "csv", "--type", "inspection", sample, "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "统一社会信用代码" in err and "→ data.subject.cert_no" in err and "fields guessed" in err
    text = out.read_text(encoding="utf-8")
    assert 'data.inspectors" = {zip = {name = "执法人员", cert_no = "执法证号"}' in text
    assert main(["mapping", "draft", "--format", "csv", "--type", "inspection", sample, "--output", str(out)]) == 2
    assert "not overwritten" in capsys.readouterr().err
    assert main(["mapping", "draft", "--format", "json", "--type", "inspection", sample]) == 2
    assert "not JSON" in capsys.readouterr().err
