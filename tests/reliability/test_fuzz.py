"""Property tests over the pure core: whatever comes in — records mutated at random, source rows of
every built-in mapping with random values, arbitrary bytes in every format a connector may send —
only the documented outcomes come out: a verdict whose every error and warning code is in
``schemas.issues.CODES``, or a whole-body refusal (400, 413, 415) with its documented code; never
another exception. (The HTTP API is fuzzed against its OpenAPI document in
tests/gateway/test_openapi_fuzz.py.)"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.config import ConnectorConfig
from gateway.flow.prepare import BodyError, RecordPreparer
from mappings import builtin_mapping, builtin_names
from mappings.formats import parse_xml
from mappings.pipeline import map_record
from schemas import Validator
from schemas.issues import CODES
from tests.conftest import fixed_clock
from tests.schemas.test_agreement import JSON, NEAR_MISSES, records

VALIDATOR = Validator(clock=fixed_clock)
BODY_CODES = {"malformed", "body_too_large", "too_many_records", "unsupported_media_type"}
VALUES = st.one_of(st.text(max_size=40), NEAR_MISSES, st.integers(-(10**15), 10**15), st.none(), st.booleans(),
                   st.floats(allow_nan=True, allow_infinity=True))


def _codes(verdict: Any) -> set[str]:
    return {issue.code for issue in (*verdict.errors, *verdict.warnings)}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(records(), JSON))
def test_validation_reports_only_documented_codes(value: Any) -> None:
    verdict = VALIDATOR.validate(value)
    assert _codes(verdict) <= set(CODES)
    assert all(issue.message for issue in verdict.errors)


def _examples(name: str) -> list[Any]:
    mapping = builtin_mapping(name)
    return [parse_xml(e.source.encode()) if isinstance(e.source, str) else e.source
            for e in mapping.definition.example]


@st.composite
def _mutated_source(draw: st.DrawFn, name: str) -> Any:
    """An example source row (or XML element) of the mapping ``name``, its values replaced, removed
    or added to at random."""
    source = copy.deepcopy(draw(st.sampled_from(_examples(name))))
    for _ in range(draw(st.integers(1, 5))):
        if isinstance(source, dict):
            key = draw(st.sampled_from([*source, "junk"]))
            if draw(st.booleans()) and key in source:
                del source[key]
            else:
                source[key] = draw(VALUES)
        else:
            element = draw(st.sampled_from(list(source.iter())))
            text = draw(st.one_of(st.text(max_size=40), NEAR_MISSES))
            element.text = "".join(c for c in text if c.isprintable())  # XML text cannot hold controls
    return source


@pytest.mark.parametrize("name", builtin_names())
def test_each_builtin_mapping_reports_only_documented_codes(name: str) -> None:
    mapping = builtin_mapping(name)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_mutated_source(name))
    def check(source: Any) -> None:
        _, verdict = map_record(mapping, VALIDATOR, source)
        assert _codes(verdict) <= set(CODES)

    check()


CONNECTORS = {
    "json": (ConnectorConfig(id="amr", name="a", department_code="11370000FE1KM2U90Y", region_code="370000",
                             produces=["inspection"]), None, "application/json"),
    "ndjson": (ConnectorConfig(id="amr", name="a", department_code="11370000FE1KM2U90Y", region_code="370000",
                               produces=["inspection"]), None, "application/x-ndjson"),
    "csv": (ConnectorConfig(id="dr", name="d", kind="double_random", department_code="11370000FE1KM2U90Y",
                            region_code="370000", produces=["inspection"]), "double_random.result", "text/csv"),
    "xml": (ConnectorConfig(id="eo", name="e", kind="enforcement_oversight", department_code="11370000JUCCNBB658",
                            region_code="370000", produces=["penalty"]), "enforcement_oversight.penalty",
            "application/xml"),
}


@st.composite
def _bodies(draw: st.DrawFn, kind: str) -> bytes:
    """Random bytes, or a body of the kind's own with random bytes spliced in."""
    noise = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        return noise
    base = {"json": b'[{"record_type": "inspection", "record_id": "x"}]',
            "ndjson": b'{"record_type": "inspection"}\n{"record_id": 1}\n',
            "csv": "抽查任务编号,计划编号\nRW1,SJ1\n".encode("gb18030"),
            "xml": etree.tostring(_examples("enforcement_oversight.penalty")[0])}[kind]
    at = draw(st.integers(0, len(base)))
    return base[:at] + noise + base[at + draw(st.integers(0, 20)):]


@pytest.mark.parametrize("kind", sorted(CONNECTORS))
def test_any_bytes_give_a_verdict_or_a_documented_refusal(kind: str) -> None:
    connector, mapping_name, content_type = CONNECTORS[kind]
    mapping = builtin_mapping(mapping_name) if mapping_name else None
    preparer = RecordPreparer(log_hash="sm3", max_records=100)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_bodies(kind))
    def check(body: bytes) -> None:
        try:
            prepared = preparer.prepare(connector, mapping, body, content_type, "2026-11-26T12:00:00.000+00:00")
        except BodyError as refusal:
            refused = (refusal.status, refusal.code)
        else:
            refused = None
            assert all({e["code"] for e in rejected.errors} <= set(CODES) for rejected in prepared.rejected)
        assert refused is None or (refused[0] in (400, 413, 415) and refused[1] in BODY_CODES)

    check()
