"""Validation of standard records: the schema stage, the semantic checks and how errors are told."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from stdnum.cn import ric

from schemas import Validator
from schemas.semantic import region_status, ric_problem
from tests.conftest import IDENTIFIERS, VALID_RECORDS, fixed_clock


def _codes(validator: Validator, record: Any) -> set[tuple[str, str]]:
    return {(e.path, e.code) for e in validator.validate(record).errors}


@pytest.mark.parametrize("record_type", list(VALID_RECORDS))
def test_the_valid_record_of_every_type_passes(validator: Validator, record: Any, record_type: str) -> None:
    """A complete, correct record of each type has no errors and no warnings."""
    verdict = validator.validate(record(record_type))
    assert verdict.ok, verdict.errors
    assert verdict.warnings == ()


def _set(rec: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")[1:]
    node: Any = rec
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()

CASES = [
    ("inspection", "/data/action_code", _DELETE, "required"),
    ("inspection", "/record_id", _DELETE, "required"),
    ("inspection", "/data", _DELETE, "required"),
    ("inspection", "/data/public", "是", "type"),
    ("inspection", "/data/matter_code", "3701234567890", "pattern"),
    ("inspection", "/data/form", "03", "enum"),
    ("inspection", "/op", "insert", "enum"),
    ("inspection", "/data/inspected_at", "2026-05-06 10:00:00", "pattern"),
    ("inspection", "/data/inspected_at", "2026-02-30T10:00:00+08:00", "format"),
    ("inspection", "/record_id", "x" * 101, "length"),
    ("inspection", "/data/inspectors", [{"name": "张伟", "cert_no": "1"}], "items_count"),
    ("inspection", "/data/subject/cert_no", IDENTIFIERS["invalid_uscc"][0], "uscc_checksum"),
    ("inspection", "/data/implementing_org/code", IDENTIFIERS["invalid_uscc"][1], "uscc_checksum"),
    ("inspection", "/data/item_check_code", IDENTIFIERS["invalid_uscc"][2] + "11234", "uscc_checksum"),
    ("inspection", "/region_code", "379999", "region_unknown"),
    ("inspection", "/data/submitted_at", "2026-05-01T09:00:00+08:00", "time_order"),
    ("inspection", "/data/inspectors/1/cert_no", "3701000001", "duplicate_inspector"),
    ("inspection", "/data/surprise", 1, "unknown_field"),
    ("inspection", "/surprise", 1, "unknown_field"),
    ("penalty", "/data/fine_amount", "45.70001", "pattern"),
    ("penalty", "/data/fine_amount", 457000, "type"),
    ("penalty", "/data/penalty_types", ["02", "02"], "unique"),
    ("penalty", "/data/penalty_types/0", "15", "enum"),
    ("inspection_plan", "/data/sampling_ratio", 0, "range"),
    ("inspection_plan", "/data/sampling_ratio", 1.5, "range"),
    ("inspection_plan", "/data/period_end", "2026-02-01", "time_order"),
    ("license", "/data/valid_to", "2025-01-01", "time_order"),
    ("clue", "/data/reporter/id_no", "370202199301095154", "id_checksum"),
    ("case_transfer", "/data/subject/cert_no", "370203198708229671", "id_checksum"),
    ("joint_task", "/data/union_region_codes/1", "370199", "region_unknown"),
    ("subject", "/data/industry_code", "H62", "pattern"),
    ("feedback", "/data/kind", "done", "enum"),
    ("risk_warning", "/data/level", "purple", "enum"),
]


@pytest.mark.parametrize(("record_type", "path", "value", "code"), CASES)
def test_each_problem_has_its_stable_code_and_path(validator: Validator, record: Any, record_type: str, path: str,
                                                    value: Any, code: str) -> None:
    """A single fault yields its documented code at the faulty field's JSON pointer."""
    rec = record(record_type)
    _set(rec, path, value)
    assert (path, code) in _codes(validator, rec)


def test_every_message_is_in_chinese_and_english(validator: Validator, record: Any) -> None:
    """Messages carry both languages, separated by ' / '."""
    rec = record("inspection")
    del rec["data"]["action_code"]
    (error,) = validator.validate(rec).errors
    assert error.message == "缺少必填字段 action_code / required field action_code is missing"
    assert error.as_dict() == {"path": "/data/action_code", "code": "required", "message": error.message}


def test_all_errors_of_a_record_come_together(validator: Validator, record: Any) -> None:
    """Schema and semantic errors of one record are reported in one verdict."""
    rec = record("inspection")
    del rec["data"]["action_code"]
    rec["data"]["subject"]["cert_no"] = IDENTIFIERS["invalid_uscc"][1]
    rec["data"]["submitted_at"] = "2026-05-01T09:00:00+08:00"
    rec["region_code"] = "379999"
    assert {code for _, code in _codes(validator, rec)} == {"required", "uscc_checksum", "time_order", "region_unknown"}


def test_a_field_failing_its_schema_is_not_reported_twice(validator: Validator, record: Any) -> None:
    """A malformed region code is a pattern error, not also an unknown region."""
    rec = record("inspection")
    rec["region_code"] = "37010"
    assert _codes(validator, rec) == {("/region_code", "pattern")}


def test_lenient_identifiers_are_warnings(record: Any) -> None:
    """With lenient identifiers a failing check character is a warning, and the record is valid."""
    rec = record("inspection")
    rec["data"]["subject"]["cert_no"] = IDENTIFIERS["invalid_uscc"][0]
    lenient = Validator(identifiers="lenient", clock=fixed_clock)
    verdict = lenient.validate(rec)
    assert verdict.ok
    assert [w.code for w in verdict.warnings] == ["uscc_checksum"]
    assert not Validator(clock=fixed_clock).validate(rec).ok
    assert lenient.validate(rec, identifiers="strict").errors


def test_event_times_may_lie_at_most_a_day_ahead(record: Any) -> None:
    """An inspection 25 hours in the future is refused; 23 hours ahead is accepted."""
    now = dt.datetime(2026, 5, 6, 2, 0, tzinfo=dt.UTC)  # 10:00 at +08:00
    validator = Validator(clock=lambda: now)
    rec = record("inspection")
    for hours, ok in ((23, True), (25, False)):
        moment = (now + dt.timedelta(hours=hours)).astimezone(dt.timezone(dt.timedelta(hours=8)))
        rec["occurred_at"] = rec["data"]["inspected_at"] = moment.isoformat()
        rec["data"]["submitted_at"] = moment.isoformat()
        codes = {e.code for e in validator.validate(rec).errors}
        assert ("time_future" in codes) is not ok


def test_validity_ends_and_deadlines_may_lie_ahead(validator: Validator, record: Any) -> None:
    """A licence valid until 2031 and a clue deadline next year are not 'in the future' errors."""
    rec = record("clue")
    rec["data"]["deadline"] = "2027-06-08T18:00:00+08:00"
    assert validator.validate(rec).ok
    assert validator.validate(record("license")).ok


def test_a_same_day_inversion_is_a_warning(validator: Validator, record: Any) -> None:
    """Submitted at 09:00 on the day of a 10:00 inspection (a placeholder time): warned, not refused."""
    rec = record("inspection")
    rec["data"]["submitted_at"] = "2026-05-06T09:00:00+08:00"
    verdict = validator.validate(rec)
    assert verdict.ok
    assert [(w.path, w.code) for w in verdict.warnings] == [("/data/submitted_at", "time_order")]


def test_historical_region_codes_are_accepted_with_a_warning(validator: Validator, record: Any) -> None:
    """崇文区 (110103, merged in 2010) is a known code: valid, with a region_historical warning."""
    rec = record("inspection")
    rec["region_code"] = "110103"
    verdict = validator.validate(rec)
    assert verdict.ok
    assert [w.code for w in verdict.warnings] == ["region_historical"]
    assert region_status("110103") == ("崇文区", False)
    assert region_status("370102") == ("历下区", True)
    assert region_status("370000") == ("山东省", True)
    assert region_status("379999") is None


@pytest.mark.parametrize(("value", "path", "code"), [
    ([], "", "not_object"),
    ("text", "", "not_object"),
    ({"op": "upsert"}, "/record_type", "required"),
    ({"record_type": "nonesuch"}, "/record_type", "unknown_type"),
    ({"record_type": 7}, "/record_type", "unknown_type"),
])
def test_records_of_no_known_type_are_refused_precisely(validator: Validator, value: Any, path: str, code: str) -> None:
    """Non-objects and unknown types get one clear error."""
    assert _codes(validator, value) == {(path, code)}


def test_a_delete_needs_no_payload(validator: Validator) -> None:
    """A delete may carry the envelope alone; an upsert may not."""
    rec = {k: v for k, v in VALID_RECORDS["inspection"].items() if k != "data"}
    assert validator.validate({**rec, "op": "delete"}).ok
    assert ("/data", "required") in _codes(validator, rec)


def test_subject_certificates_are_checked_by_their_type(validator: Validator, record: Any) -> None:
    """An ID-card subject is checked as an ID number, a USCC subject as a USCC."""
    rec = record("case_transfer")
    assert validator.validate(rec).ok
    rec["data"]["subject"]["cert_type"] = "001"
    assert ("/data/subject/cert_no", "uscc_checksum") in _codes(validator, rec)


def _issued(prefix: str, born: str, sequence: str = "123") -> str:
    """A resident ID number with its check digit right (python-stdnum computes it)."""
    body = prefix + born + sequence
    return body + ric.calc_check_digit(body + "0")


# As issued: the birthplace code is the one the county had when the number was issued, which may be
# years after the birth; it must exist or have existed, not have existed at the birth.
ID_CASES = [
    ("born 1978 in what became 芝罘区 (370602, 1983-)", _issued("370602", "19780315"), None),
    ("born 1972 in what became 历下区 (370102, 1983-)", _issued("370102", "19720101"), None),
    ("born 1975 in what became 历城区 (370112, 1987-)", _issued("370112", "19750620"), None),
    ("a code no longer in force: 章丘市 (370181, 1992-2016)", _issued("370181", "19950101"), None),
    ("a code in force since before the birth", _issued("110101", "19900101"), None),
    ("check character X", next(n for s in range(100, 999) if (n := _issued("110101", "19850101", str(s)))[-1] == "X"),
     None),
    ("a lower-case x", next(n for s in range(100, 999) if (n := _issued("110101", "19850101", str(s)))[-1] == "X")
     .lower(), None),
    ("a wrong check digit", _issued("370102", "19720101")[:-1] + ("0" if _issued("370102", "19720101")[-1] != "0"
                                                                   else "1"), "id_checksum"),
    ("February 30th", _issued("370102", "19720230"), "id_birth_date"),
    ("born in the future", _issued("370102", "20990101"), "id_birth_date"),
    ("a birthplace code that never existed", _issued("999999", "19800101"), "id_region"),
    ("a code within a province that never existed", _issued("379999", "19800101"), "id_region"),
]


@pytest.mark.parametrize(("case", "number", "code"), ID_CASES, ids=[c[0] for c in ID_CASES])
def test_resident_id_numbers_are_judged_as_they_are_issued(validator: Validator, record: Any, case: str,
                                                           number: str, code: str | None) -> None:
    """Each fault its own code, and the people born before their county's code existed accepted."""
    assert ric_problem(number) == code, case
    rec = record("clue")
    rec["data"]["reporter"]["id_no"] = number
    codes = {c for p, c in _codes(validator, rec) if p == "/data/reporter/id_no"}
    assert codes == ({code} if code else set())
