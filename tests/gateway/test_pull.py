"""``supex pull``: what is acknowledged is what was written, in NDJSON or the connector's own format."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from gateway.cli import exchange as operations
from mappings import ValueMappingError, builtin_mapping
from tests.conftest import VALID_RECORDS


class _Inbox:
    """A gateway's inbox as the client sees it: two pages of one penalty each, then nothing."""

    def __init__(self, *_args: Any) -> None:
        self.pages = [[VALID_RECORDS["penalty"]], [{**VALID_RECORDS["penalty"], "record_id": "pe-2"}]]
        self.acked: list[str] = []
        _Inbox.last = self

    last: _Inbox

    async def __aenter__(self) -> _Inbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def inbox(self, after: str | None, limit: int) -> dict[str, Any]:
        position = int(after or 0)
        records = self.pages[position] if position < len(self.pages) else []
        return {"records": records, "next": str(position + (1 if records else 0))}

    async def ack(self, cursor: str) -> dict[str, Any]:
        self.acked.append(cursor)
        return {"acked": cursor}


def _args(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"connector": "ipush", "ack": True, "follow": False, "every": 1.0, "limit": 100,
                                 **given})


async def test_each_ndjson_page_is_acknowledged_after_it_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "SupexClient", _Inbox)
    out = io.BytesIO()
    assert await operations._pull(_args(), "http://gw", "secret", None, out) == 2
    assert out.getvalue().count(b"\n") == 2 and _Inbox.last.acked == ["1", "2"]


async def test_an_xml_document_is_acknowledged_once_it_is_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "SupexClient", _Inbox)
    out = io.BytesIO()
    mapping = builtin_mapping("enforcement_oversight.penalty")
    assert await operations._pull(_args(), "http://gw", "secret", mapping, out) == 2
    document = out.getvalue().decode()
    assert document.startswith("<?xml") and document.count("<XZCF ") == 2 and _Inbox.last.acked == ["2"]


async def test_a_record_the_own_format_cannot_hold_stops_before_it_is_acknowledged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "SupexClient", _Inbox)
    mapping = builtin_mapping("enforcement_oversight.penalty")
    broken = {**VALID_RECORDS["penalty"], "data": {**VALID_RECORDS["penalty"]["data"], "fine_amount": "很多"}}

    class Broken(_Inbox):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.pages[1] = [broken]

    monkeypatch.setattr(operations, "SupexClient", Broken)
    out = io.BytesIO()
    with pytest.raises(ValueMappingError, match="CF_FKJE"):
        await operations._pull(_args(), "http://gw", "secret", mapping, out)
    assert _Inbox.last.acked == [] and out.getvalue() == b""  # no half document, nothing acknowledged


async def test_follow_waits_for_more_through_the_injected_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "SupexClient", _Inbox)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await operations._pull(_args(follow=True, every=3.0), "http://gw", "s", None, io.BytesIO(), sleep=sleep)
    assert waits == [3.0, 3.0] and _Inbox.last.acked == ["1", "2"]
