"""The standard interface v1.1: what real exports hold and v1 had no place for — inspection findings
(隐患), a subject's representative with a certificate, a licence's status — with v1 records still valid."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.cli import main
from policy import SharingRule
from policy.rules import compile_rule, default_masks
from schemas import Validator, load_schema_set
from tests.conftest import VALID_RECORDS


def _record(kind: str, **data: Any) -> dict[str, Any]:
    record = copy.deepcopy(VALID_RECORDS[kind])
    record["data"].update(data)
    return record


FINDINGS = [{"description": "灭火器过期", "level": "1", "deadline": "2024-03-20", "status": "3",
             "rectified_on": "2024-03-18"}, {"description": "疏散通道堵塞", "level": "3", "status": "1"}]


def test_v1_records_stay_valid_and_the_version_is_v1_1(validator: Validator) -> None:
    assert load_schema_set().version == "v1.1"
    assert all(validator.validate(record).ok for record in VALID_RECORDS.values())


def test_an_inspection_carries_its_findings(validator: Validator) -> None:
    assert validator.validate(_record("inspection", findings=FINDINGS)).ok
    bad = _record("inspection", findings=[{"description": "x", "level": "重大", "deadline": "2024-02-30"}])
    assert {(e.path, e.code) for e in validator.validate(bad).errors} == {
        ("/data/findings/0/level", "enum"), ("/data/findings/0/deadline", "format")}


def test_a_subjects_representative_has_their_certificate_checked(validator: Validator) -> None:
    subject = {**VALID_RECORDS["inspection"]["data"]["subject"],
               "representative": {"name": "张伟", "cert_type": "111", "cert_no": "37060219780512001X"}}
    assert validator.validate(_record("inspection", subject=subject)).ok
    subject["representative"]["cert_no"] = "370602197805120013"
    (error,) = validator.validate(_record("inspection", subject=subject)).errors
    assert (error.path, error.code) == ("/data/subject/representative/cert_no", "id_checksum")


def test_a_licence_has_a_status(validator: Validator) -> None:
    assert validator.validate(_record("license", status="4", status_changed_on="2024-06-01")).ok
    (error,) = validator.validate(_record("license", status="吊销")).errors
    assert (error.path, error.code) == ("/data/status", "enum")


def test_the_representative_is_masked_in_sharing_unless_a_rule_lifts_it() -> None:
    assert default_masks("inspection") == {"subject.representative.name": "name",
                                           "subject.representative.cert_no": "id_no"}
    rule = SharingRule(id="r", record_types=["inspection"], consumers=["c"], purpose="监管")
    assert set(compile_rule(rule, ["c"]).masks) == {"subject.representative.name", "subject.representative.cert_no"}
    lifted = rule.model_copy(update={"mask": {"subject.representative.name": "clear"}})
    assert set(compile_rule(lifted, ["c"]).masks) == {"subject.representative.cert_no"}


def test_schemas_list_shows_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "list"]) == 0
    assert capsys.readouterr().out.startswith("标准接口 / standard interface v1.1")
    assert main(["schemas", "list", "--json"]) == 0
    assert {row["version"] for row in json.loads(capsys.readouterr().out)} == {"v1.1"}
