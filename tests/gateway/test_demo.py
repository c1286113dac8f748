"""``supex demo``: the scripted tour runs through and shows each thing it promises."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from rich.console import Console

from gateway.demo import run_demo


def test_the_tour_shows_the_procedure_routing_feedback_formats_masking_and_a_verified_log(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(tmp_path / "demo", Console(file=out, width=200, highlight=False)) == 0
    text = out.getvalue()
    # a request approved with masks creates the rule the clue is then routed under
    assert re.search(r"the hotline approves with masks: approved, the sharing rule grant-(req-[0-9a-f]{16})", text)
    assert re.search(r"routed → amr by the catalogue route \(rule grant-req-[0-9a-f]{16}, "
                     r"purpose 食品安全投诉举报线索核查\)", text)
    # the lead department's feedback comes late and is escalated to the coordinator
    assert "the scheduler: {'duty_overdue': 1}" in text
    assert re.search(r"is told: duty duty-[0-9a-f]{16} owed by amr was due 2026-11-06T15:59:59.999\+00:00", text)
    assert "the duty is met, in time: False" in text
    # an objection, answered by a correction its recipient receives; the quality report shows both
    assert "version 2 naming the objection: corrected; its recipient receives it: subject " \
           "济南某餐饮管理有限公司" in text
    assert "['sharing_request', 'record_objected']" in text  # pushed to the hotline system
    report = json.loads(text.split("the quality report for 2026-11 (及时率, 合格率):")[1].split("─")[0])
    rows = {r["connector"]: r for r in report}
    assert (rows["amr"]["feedback_late"], rows["hotline"]["corrected"]) == (1, 1)
    assert '"phone": "138****5678"' in text and "370202199301095153" not in text  # masked, ID not shared
    assert '"record_id": "xs-0001"' in text  # the feedback came back to the hotline
    assert '"punish_document_number": "鲁市场罚〔2026〕790号"' in text and '"penalty_amount": "457000"' in text
    assert "12 rows, 12 accepted, 0 rejected" in text
    assert '"name": "高*"' in text and "高霞" not in text
    assert "'ok': True" in text
    assert (tmp_path / "demo" / "drop" / "double-random" / "done" / "results.csv").exists()  # kept
