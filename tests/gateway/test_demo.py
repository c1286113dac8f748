"""``supex demo``: the scripted tour runs through and shows each thing it promises."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from gateway.demo import run_demo


def test_the_tour_shows_routing_feedback_formats_masking_and_a_verified_log(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(tmp_path / "demo", Console(file=out, width=200, highlight=False)) == 0
    text = out.getvalue()
    assert "routed → amr by the catalogue route (rule clue-to-amr, purpose 线索核查)" in text
    assert '"phone": "138****5678"' in text and "370202199301095153" not in text  # masked, ID not shared
    assert '"record_id": "xs-0001"' in text  # the feedback came back to the hotline
    assert '"punish_document_number": "鲁市场罚〔2026〕790号"' in text and '"penalty_amount": "457000"' in text
    assert "12 rows, 12 accepted, 0 rejected" in text
    assert '"name": "高*"' in text and "高霞" not in text
    assert "'ok': True" in text
    assert (tmp_path / "demo" / "drop" / "double-random" / "done" / "results.csv").exists()  # kept
