"""The built-in mappings on the sample files, their examples, and round trips."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from mappings import builtin_mapping, builtin_names, map_stream, run_examples
from mappings.exceptions import UnknownMappingError
from schemas import Validator, load_schema_set
from tests.conftest import SAMPLES, VALID_RECORDS

SAMPLE_FILES = [
    ("internet_plus.check_action", "check_actions.json", 12),
    ("enforcement_oversight.penalty", "penalties.xml", 3),
    ("double_random.result", "results.gb18030.csv", 12),
    ("double_random.result", "results.utf8bom.csv", 3),
]


def test_the_spec_mappings_are_built_in() -> None:
    """Three built-in mappings, as documented; Internet+ also takes penalties in its own rows."""
    assert builtin_names() == ["double_random.result", "enforcement_oversight.penalty", "internet_plus.check_action",
                               "internet_plus.penalty"]
    with pytest.raises(UnknownMappingError, match=r"internet_plus\.check_action"):
        builtin_mapping("internet_plus.nonesuch")


@pytest.mark.parametrize(("name", "sample", "count"), SAMPLE_FILES)
def test_every_sample_record_maps_to_a_valid_record(validator: Validator, name: str, sample: str, count: int) -> None:
    """Each sample file maps completely, and every mapped record is valid."""
    with (SAMPLES / sample).open("rb") as stream:
        results = list(map_stream(builtin_mapping(name), validator, stream))
    assert len(results) == count
    assert [r.verdict.errors for r in results if not r.verdict.ok] == []


@pytest.mark.parametrize("name", builtin_names())
def test_the_examples_of_each_builtin_mapping_hold(validator: Validator, name: str) -> None:
    """Each built-in mapping carries examples, and all of them hold (round trips included)."""
    outcomes = run_examples(builtin_mapping(name), validator)
    assert len(outcomes) >= 3
    assert [(o.name, o.problems) for o in outcomes if not o.ok] == []


def _mapped(name: str, sample: str, validator: Validator) -> list[dict[str, Any]]:
    with (SAMPLES / sample).open("rb") as stream:
        return [r.record for r in map_stream(builtin_mapping(name), validator, stream) if r.record]


def test_internet_plus_codes_people_and_times(validator: Validator) -> None:
    """Local result codes become standard ones; parallel lists zip; Beijing time is explicit."""
    rows = json.loads((SAMPLES / "check_actions.json").read_text(encoding="utf-8"))
    records = _mapped("internet_plus.check_action", "check_actions.json", validator)
    local = {"1": "01", "E": "02", "A": "03", "B": "04", "C": "05", "6": "06", "7": "07", "8": "08", "F": "09"}
    for row, rec in zip(rows, records, strict=True):
        assert rec["data"]["result"]["code"] == local[row["check_result"].split("|")[0]]
        assert [p["cert_no"] for p in rec["data"]["inspectors"]] == row["check_personnel_code"].split(",")
        assert rec["data"]["inspected_at"] == row["check_date"].replace(" ", "T") + "+08:00"
        assert rec["version"] == int(row["cd_batch"])


def test_penalty_fines_are_exact_yuan(validator: Validator) -> None:
    """CF_FKJE in 万元 with four decimals becomes exact yuan."""
    xml = (SAMPLES / "penalties.xml").read_bytes()
    fines = [Decimal(e.text) * 10000 for e in etree.fromstring(xml).iter("{urn:sd:zfjd:xzcf:1}CF_FKJE")]
    records = _mapped("enforcement_oversight.penalty", "penalties.xml", validator)
    assert [Decimal(r["data"]["fine_amount"]) for r in records] == fines
    assert records[1]["data"]["penalty_types"] == ["01", "02"]


def test_double_random_labels_become_codes(validator: Validator) -> None:
    """Label-only results become standard codes with the standard label."""
    rows = list(csv.DictReader(io.StringIO((SAMPLES / "results.gb18030.csv").read_bytes().decode("gb18030"))))
    records = _mapped("double_random.result", "results.gb18030.csv", validator)
    assert records[7]["data"]["result"] == {"code": "02", "label": "发现问题已责令改正"}
    assert [r["data"]["public"] for r in records] == [row["是否公示"] == "是" for row in rows]
    assert records[4]["data"]["inspected_at"] == "2026-02-27T00:00:00+08:00"


LABELS = load_schema_set().code_tables["inspection_result"].labels
DATETIMES = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2030, 12, 31)).map(
    lambda d: d.replace(microsecond=0).isoformat() + "+08:00")
TEXT = st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(code=st.sampled_from([f"{n:02d}" for n in range(1, 10)]), when=DATETIMES, name=TEXT,
       people=st.lists(st.tuples(TEXT, st.from_regex(r"\A37[0-9]{8}\Z")), min_size=2, max_size=4,
                       unique_by=lambda p: p[1]),
       version=st.integers(1, 10**13), op=st.sampled_from(["upsert", "delete"]))
def test_internet_plus_round_trip(code: str, when: str, name: str, people: list[tuple[str, str]], version: int,
                                  op: str) -> None:
    """standard → exchange row → standard is the identity on everything the row can carry."""
    mapping = builtin_mapping("internet_plus.check_action")
    rec = copy.deepcopy(VALID_RECORDS["inspection"])
    del rec["sharing"], rec["grade"], rec["data"]["public"]  # the exchange row has no columns for these
    rec.update(version=version, op=op, occurred_at=when)
    rec["data"].update(result={"code": code, "label": LABELS[code]}, inspected_at=when, submitted_at=when,
                       action_name=name,
                       inspectors=[{"name": n, "cert_no": c} for n, c in people])
    row, problems = mapping.from_standard(rec)
    assert problems == []
    again, problems = mapping.to_standard(json.loads(json.dumps(row)))
    assert problems == []
    assert again == rec


@settings(max_examples=100, deadline=None)
@given(fen=st.integers(0, 10**12), when=DATETIMES, types=st.lists(st.sampled_from([f"{n:02d}" for n in range(1, 15)]),
       min_size=1, max_size=4, unique=True), facts=TEXT)
def test_penalty_round_trip_through_xml(fen: int, when: str, types: list[str], facts: str) -> None:
    """standard → 双公示 XML text → standard keeps amounts (to the 元 cent of 万元/4dp), dates and codes."""
    mapping = builtin_mapping("enforcement_oversight.penalty")
    rec = copy.deepcopy(VALID_RECORDS["penalty"])
    for key in ("is_criminal", "is_major"):
        del rec["data"][key]
    day = when[:10] + "T00:00:00+08:00"
    amount = Decimal(fen)
    rec.update(occurred_at=day)
    rec["data"].update(fine_amount=format(amount, "f"), decided_at=day, penalty_types=types, illegal_facts=facts)
    element, problems = mapping.from_standard(rec)
    assert problems == []
    again, problems = mapping.to_standard(etree.fromstring(etree.tostring(element)))
    assert problems == []
    assert again == rec
