"""POST /v1/records: authentication, per-record results, versions, refusals and formats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.signing import signature_headers
from tests.conftest import IDENTIFIERS, SAMPLES
from tests.gateway.conftest import AUDITOR_TOKEN, NOW, Signed, inspection


async def test_a_batch_gets_per_record_results(gw: Signed) -> None:
    """Good records are accepted, a bad one is rejected with its errors, and none blocks another."""
    bad = inspection(9)
    bad["data"]["subject"]["cert_no"] = IDENTIFIERS["invalid_uscc"][0]
    status, body = await gw.push("amr", [inspection(1), inspection(2), bad])
    assert status == 200
    assert (body["accepted"], body["rejected"], body["duplicates"], body["stale"]) == (2, 1, 0, 0)
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "rejected"]
    assert body["results"][2]["errors"][0]["code"] == "uscc_checksum"
    assert body["results"][0]["version"] == 1


@pytest.mark.parametrize("wrap", [lambda r: r, lambda r: {"records": r}])
async def test_array_and_records_object_bodies(gw: Signed, wrap: Any) -> None:
    """A JSON array and {"records": [...]} are the same batch."""
    status, body = await gw.push("amr", wrap([inspection(1)]))
    assert status == 200 and body["accepted"] == 1


async def test_ndjson_bodies(gw: Signed) -> None:
    """NDJSON is accepted; a malformed line refuses the whole request, naming the line."""
    lines = "\n".join(json.dumps(inspection(n)) for n in range(3)).encode()
    status, body = await gw.call("POST", "/v1/records", lines, connector="amr", content_type="application/x-ndjson")
    assert status == 200 and body["accepted"] == 3
    status, body = await gw.call("POST", "/v1/records", lines + b"\n{broken", connector="amr",
                                 content_type="application/x-ndjson")
    assert status == 400 and "line 4" in body["error"]["message"]


async def test_versions_duplicates_and_stale(gw: Signed) -> None:
    """Re-push is a duplicate, an older version is stale, a changed record without version is numbered."""
    await gw.push("amr", [inspection(1)])
    _, body = await gw.push("amr", [inspection(1)])
    assert body["duplicates"] == 1 and body["accepted"] == 0
    v5 = {**inspection(1), "version": 5}
    _, body = await gw.push("amr", [v5])
    seq = body["results"][0].pop("seq")
    assert body["results"][0] == {"index": 0, "record_id": "in-1", "status": "accepted", "version": 5, "warnings": []}
    stored = (await gw.call("GET", f"/v1/audit/events?after={seq - 1}&limit=1", bearer=AUDITOR_TOKEN))[1]["events"][0]
    assert (stored["seq"], stored["event"], stored["record_id"], stored["version"]) == (seq, "stored", "in-1", 5)
    _, body = await gw.push("amr", [{**inspection(1), "version": 4}])
    assert body["stale"] == 1
    _, body = await gw.push("amr", [inspection(1, mode="网络检查")])
    assert body["results"][0]["status"] == "accepted" and body["results"][0]["version"] == 6
    _, body = await gw.push("amr", [{**inspection(1, mode="书面检查"), "version": 6}])
    assert body["results"][0]["errors"][0]["code"] == "version_conflict"


async def test_types_not_produced_are_not_permitted(gw: Signed) -> None:
    """A connector may only push the types it produces."""
    penalty = inspection(1)
    penalty["record_type"] = "penalty"
    _, body = await gw.push("amr", [penalty])
    assert body["rejected"] == 1
    assert body["results"][0]["errors"][0]["code"] == "not_permitted"


async def test_deletes_are_stored_as_new_versions(gw: Signed) -> None:
    """A delete needs only the envelope and becomes the record's next version."""
    await gw.push("amr", [inspection(1)])
    delete = {k: v for k, v in inspection(1).items() if k != "data"} | {"op": "delete"}
    _, body = await gw.push("amr", [delete])
    assert body["results"][0]["status"] == "accepted" and body["results"][0]["version"] == 2


RAW = json.dumps([inspection(1)]).encode()


@pytest.mark.parametrize(("headers", "now"), [
    ({}, NOW),                                    # unsigned
    ({"X-Supex-Signature": "0" * 64}, NOW),        # wrong signature
    ({"X-Supex-Key": "nobody"}, NOW),              # unknown key
    ({"X-Supex-Nonce": "short"}, NOW),             # nonce too short
    ({"X-Supex-Algorithm": "hmac-md5"}, NOW),      # unknown algorithm
])
async def test_bad_signatures_are_401(gw: Signed, headers: dict[str, str], now: float) -> None:
    """Every broken credential is refused with 401 and nothing is stored."""
    status, body = await gw.call("POST", "/v1/records", RAW, connector="amr" if headers else None,
                                 headers=headers, now=now)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    _, page = await gw.inbox("jinan")
    assert page["records"] == []


async def test_timestamps_outside_the_window_are_401(gw: Signed) -> None:
    """A timestamp more than 300 s off is refused; 299 s is fine."""
    assert (await gw.call("POST", "/v1/records", RAW, connector="amr", now=NOW - 301))[0] == 401
    assert (await gw.call("POST", "/v1/records", RAW, connector="amr", now=NOW - 299))[0] == 200


async def test_a_replayed_nonce_is_401(gw: Signed) -> None:
    """The same signed request sent twice: the second is a replay."""
    headers = signature_headers("amr", "secret-amr-0123456789abcdef", "POST", "/v1/records", RAW, now=lambda: NOW)
    first = await gw.client.post("/v1/records", data=RAW, headers={**headers, "Content-Type": "application/json"})
    second = await gw.client.post("/v1/records", data=RAW, headers={**headers, "Content-Type": "application/json"})
    assert (first.status, second.status) == (200, 401)


async def test_sm3_signatures(gw: Signed) -> None:
    """HMAC-SM3 with an SM3 body hash is accepted."""
    headers = signature_headers("amr", "secret-amr-0123456789abcdef", "POST", "/v1/records", RAW,
                                algorithm="hmac-sm3", now=lambda: NOW)
    answer = await gw.client.post("/v1/records", data=RAW, headers={**headers, "Content-Type": "application/json"})
    assert answer.status == 200


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"[{broken", "application/json", 400),
    (b'"text"', "application/json", 400),
    (b"\xff\xfe[]", "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (RAW, "text/plain", 415),
    (RAW, "", 415),
    (b"<XZCF_LIST/>", "application/xml", 415),    # amr has no XML mapping
    (b"[" + b" " * 300_000 + b"]", "application/json", 413),
])
async def test_whole_request_refusals(gw: Signed, body: bytes, content_type: str, status: int) -> None:
    """Unparseable, unsupported and oversized bodies are refused whole, with a JSON error."""
    got, answer = await gw.call("POST", "/v1/records", body, connector="amr", content_type=content_type)
    assert got == status
    assert answer["error"]["message"]


async def test_too_many_records_is_413(gw: Signed) -> None:
    """More records than max_records in one push is refused whole."""
    status, body = await gw.push("amr", [inspection(n) for n in range(51)])
    assert status == 413 and body["error"]["code"] == "too_many_records"


async def test_xml_in_the_connectors_own_format(gw: Signed) -> None:
    """The enforcement oversight system pushes 双公示 XML; a DTD is refused with 400."""
    xml = (SAMPLES / "penalties.xml").read_bytes()
    status, body = await gw.call("POST", "/v1/records", xml, connector="eo", content_type="application/xml")
    assert status == 200 and body["accepted"] == 3
    bomb = b'<!DOCTYPE x [<!ENTITY a "aa">]><XZCF_LIST xmlns="urn:sd:zfjd:xzcf:1"><XZCF>&a;</XZCF></XZCF_LIST>'
    status, body = await gw.call("POST", "/v1/records", bomb, connector="eo", content_type="application/xml")
    assert status == 400 and "DTD" in body["error"]["message"]


async def test_csv_and_json_rows_in_their_own_formats(gw: Signed) -> None:
    """GB18030 CSV from the double-random platform and Internet+ JSON rows map through their mappings."""
    csv_body = (SAMPLES / "results.gb18030.csv").read_bytes()
    status, body = await gw.call("POST", "/v1/records", csv_body, connector="dr", content_type="text/csv")
    assert status == 200 and body["accepted"] == 12
    rows = (SAMPLES / "check_actions.json").read_bytes()
    status, body = await gw.call("POST", "/v1/records", rows, connector="ip")
    assert status == 200 and body["accepted"] == 12
    assert sum(bool(r["warnings"]) for r in body["results"]) == 1


async def test_other_roles_cannot_push(gw: Signed) -> None:
    """An auditor's token does not admit pushing (403)."""
    status, _ = await gw.call("POST", "/v1/records", RAW, bearer=AUDITOR_TOKEN)
    assert status == 403


async def test_a_connector_without_a_mapping_is_told_it_pushes_standard_json(gw: Signed) -> None:
    status, body = await gw.call("POST", "/v1/records", b"a,b\n1,2\n", connector="amr", content_type="text/csv")
    assert status == 415 and "this connector has no mapping: it pushes standard records as JSON or NDJSON, not CSV" \
        in body["error"]["message"]
    status, body = await gw.call("POST", "/v1/records", b"<r/>", connector="eo", content_type="text/csv")
    assert status == 415 and "its mapping reads XML" in body["error"]["message"]
