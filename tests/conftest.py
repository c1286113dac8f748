"""Shared fixtures: the data folder, one valid record of every type, a fixed clock."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from schemas import Validator

DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).parents[1] / "connectors" / "samples"  # the external systems' own formats
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
VALID_RECORDS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "schemas" / "examples.json").read_text(encoding="utf-8"))
IDENTIFIERS: dict[str, list[str]] = json.loads((DATA / "identifiers.json").read_text(encoding="utf-8"))


def fixed_clock() -> dt.datetime:
    """The tests' 'now': 2026-11-26 12:00 UTC."""
    return NOW


@pytest.fixture(scope="session")
def validator() -> Validator:
    """A strict validator with the fixed clock."""
    return Validator(clock=fixed_clock)


@pytest.fixture
def record() -> Any:
    """A factory of deep copies of the valid record of a type."""
    return lambda record_type: copy.deepcopy(VALID_RECORDS[record_type])

# Property tests are deterministic here (the same examples every run); set
# HYPOTHESIS_PROFILE=explore to search afresh.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
