"""Every way in that should be shut: refused with 401 or 403 (or the record rejected), logged, and
not one value of anyone's data in the answer — asked of the endpoints that hold data (a
consumer's inbox, a producer's rejections and trails)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.signing import signature_headers
from tests.gateway.conftest import AUDITOR_TOKEN, NOW, SECRETS, Signed, inspection

MARKER = "机密标记QX7"


@pytest.fixture
async def loaded(gw: Signed) -> Signed:
    """A gateway holding a record for jinan and a rejected record of amr's, each with the marker."""
    bad = inspection(2, action_name=MARKER)
    bad["data"]["subject"]["cert_no"] = "91370102MA3C4GXX0A"
    status, body = await gw.push("amr", [inspection(1, action_name=MARKER), bad])
    assert status == 200 and body["accepted"] == 1 and body["rejected"] == 1
    return gw


def _signed(connector: str, secret: str, path: str, **changes: Any) -> dict[str, str]:
    headers = signature_headers(connector, secret, "GET", path, b"", now=lambda: changes.pop("now", NOW))
    headers.update(changes)
    return headers


ENDPOINTS = [("/v1/inbox", "jinan"), ("/v1/rejections", "amr"), ("/v1/records/in-2/trail", "amr")]
ATTACKS = {
    "no authentication": lambda path, who: {},
    "unknown key": lambda path, who: _signed("ghost", SECRETS[who], path),
    "wrong signature": lambda path, who: _signed(who, "not-the-secret-0123456789", path),
    "stale timestamp": lambda path, who: _signed(who, SECRETS[who], path, now=NOW - 3600),
    "a future timestamp": lambda path, who: _signed(who, SECRETS[who], path, now=NOW + 3600),
    "an auditor's token for a connector's data": lambda path, who: {"Authorization": f"Bearer {AUDITOR_TOKEN}"},
    "a made-up token": lambda path, who: {"Authorization": "Bearer guessed-token-0000000000"},
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize(("path", "owner"), ENDPOINTS, ids=[p for p, _ in ENDPOINTS])
async def test_a_credential_that_is_not_the_owners_gets_nothing(loaded: Signed, attack: str, path: str,
                                                                owner: str) -> None:
    with capture_logs() as logs:
        answer = await loaded.client.get(path, headers=ATTACKS[attack](path, owner))
        text = await answer.text()
    assert answer.status in (401, 403) and MARKER not in text and "in-1" not in text
    assert [e["status"] for e in logs if e["event"] == "refused"] == [answer.status]


async def test_a_replayed_request_gets_nothing(loaded: Signed) -> None:
    headers = _signed("jinan", SECRETS["jinan"], "/v1/inbox")
    first = await loaded.client.get("/v1/inbox", headers=headers)
    assert first.status == 200 and MARKER in await first.text()  # the owner, once
    with capture_logs() as logs:
        again = await loaded.client.get("/v1/inbox", headers=headers)
        text = await again.text()
    assert again.status == 401 and MARKER not in text and "replay" in text
    assert [e["status"] for e in logs if e["event"] == "refused"] == [401]


@pytest.mark.parametrize(("caller", "path", "status"), [
    ("jinan", "/v1/rejections", 200),  # its own rejections: none
    ("jinan", "/v1/records/in-2/trail", 404),  # another connector's record: not its own
    ("qingdao", "/v1/records/in-1/trail", 404),
    ("amr", "/v1/inbox", 200),  # nothing routed to it (replies and the catalogue could be)
])
async def test_a_connector_sees_only_its_own(loaded: Signed, caller: str, path: str, status: int) -> None:
    got, answer = await loaded.call("GET", path, connector=caller)
    assert got == status and MARKER not in json.dumps(answer, ensure_ascii=False)
    assert got != 200 or answer in ({"rejections": [], "next": "0"}, {"records": [], "next": "0", "receipts": []})


async def test_what_a_connector_may_not_send_or_receive_is_refused_and_logged(loaded: Signed) -> None:
    """A type it does not produce is rejected (and logged as such); a type it does not consume
    never reaches its inbox."""
    status, body = await loaded.push("jinan", [inspection(5)])  # jinan produces nothing
    assert status == 200 and body["results"][0]["errors"][0]["code"] == "not_permitted"
    clue = {"record_type": "clue", "record_id": "xs-1", "op": "upsert", "occurred_at": "2026-05-01T09:30:00+08:00",
            "region_code": "370202", "data": {"clue_id": "12345-1", "channel": "12345",
                                             "received_at": "2026-05-01T09:30:00+08:00", "description": MARKER}}
    assert (await loaded.push("amr", [clue]))[1]["accepted"] == 1
    _, page = await loaded.inbox("qingdao")  # qingdao consumes inspections only
    assert all(r["record_type"] == "inspection" for r in page["records"]) and MARKER not in json.dumps(page)
    _, events = await loaded.call("GET", "/v1/audit/events?event=rejected&connector=jinan", bearer=AUDITOR_TOKEN)
    assert [e["reason"] for e in events["events"]] == ["not_permitted"]
