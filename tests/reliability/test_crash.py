"""The gateway SIGKILLed three times at random moments while four clients push: nothing
acknowledged is lost, nothing is stored twice, each consumer sees every record, the log verifies
(at a small scale here; `benchmarks/crash.py` runs 100,000 records)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import Backend
from tests.reliability.crash import crash_run

pytestmark = pytest.mark.slow


def test_nothing_acknowledged_is_lost_across_three_kills(backend: Backend, tmp_path: Path) -> None:
    figures = crash_run(tmp_path / "gateway", backend.setting, records=3000, kills=3, seed=7, batch=50)
    assert figures.kills == 3
    assert figures.acknowledged == figures.records == figures.stored
    assert (figures.lost_push, figures.lost_pull, figures.stored_twice) == (0, 0, 0)
    assert figures.repeated_pulls == 0  # the inbox serves each version once
    assert figures.log_verified
