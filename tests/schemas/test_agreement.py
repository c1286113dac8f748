"""The fast compiled schema stage and jsonschema agree on every record, valid or not."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Validator
from tests.conftest import VALID_RECORDS, fixed_clock

VALIDATOR = Validator(clock=fixed_clock)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# strings shaped like the interface's values, so that mutations also land near the boundaries
NEAR_MISSES = st.sampled_from([
    "2026-05-06T10:00:00+08:00", "2026-05-06T10:00:00Z", "2026-05-06t10:00:00z", "2026-13-06T10:00:00+08:00",
    "2026-05-06T24:00:00+08:00", "2026-05-06 10:00:00", "2026-05-06", "2026-02-29", "2024-02-29", "20260506",
    "370102", "3701020", "91370102CXCY5NUM1A", "91370102CXCY5NUM1I", "01", "1", "unconditional", "core", "delete",
    "0", "0.05", "457000", "45.70001", "", " ", "A", "6210", "2026Q3", "2026Q5",
])


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at] if at else []
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*at, key))
    elif isinstance(value, list):
        for n, sub in enumerate(value):
            found += _paths(sub, (*at, n))
    return found


@st.composite
def records(draw: st.DrawFn) -> Any:
    """A valid record of any type with zero to four random mutations."""
    record_type = draw(st.sampled_from(sorted(VALID_RECORDS)))
    rec = copy.deepcopy(VALID_RECORDS[record_type])
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(rec)
        path = draw(st.sampled_from(paths))
        parent: Any = rec
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["delete", "replace", "near", "add"]))
        if action == "delete" and path != ("record_type",):
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(JSON)
        elif path != ("record_type",):
            parent[path[-1]] = draw(NEAR_MISSES if action == "near" else JSON)
    return rec


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_fast_and_full_schema_stages_agree(rec: Any) -> None:
    """For generated valid and invalid records of every type, both stages give the same verdict."""
    fast = VALIDATOR.is_schema_valid(rec, stage="fast")
    full = VALIDATOR.is_schema_valid(rec, stage="full")
    assert fast == full
    verdict = VALIDATOR.validate(rec)
    if not fast:
        assert not verdict.ok
        assert all(e.code and e.message for e in verdict.errors)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_arbitrary_json_never_raises(value: Any) -> None:
    """Any JSON value whatsoever yields a verdict, never an exception."""
    VALIDATOR.validate(value)
