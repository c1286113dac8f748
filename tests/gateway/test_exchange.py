"""Pull delivery, rejections, trails, schemas, audit endpoints, roles, metrics, OpenAPI and logs."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import structlog
from openapi_spec_validator import validate as validate_openapi

from connectors.signing import signature_headers
from gateway.config import load_config
from gateway.exchange_log import EVENTS
from gateway.http.app import STORE, all_routes, create_app
from gateway.http.openapi import openapi_document
from tests.conftest import IDENTIFIERS
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, CONFIG_TEXT, NOW, SECRETS, Signed, inspection

RAW_ONE = json.dumps([inspection(1)]).encode()


async def _drain(gw: Signed, connector: str) -> tuple[list[dict[str, Any]], str | None]:
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        status, page = await gw.inbox(connector, after, limit=2)
        assert status == 200
        if not page["records"]:
            return seen, after
        seen += page["records"]
        after = page["next"]


async def test_inbox_serves_by_jurisdiction_in_order(gw: Signed) -> None:
    """A city receives its counties' records, oldest first, with the gateway's envelope fields."""
    await gw.push("amr", [inspection(1, "370102"), inspection(2, "370202"), inspection(3, "370112")])
    jinan, _ = await _drain(gw, "jinan")
    qingdao, _ = await _drain(gw, "qingdao")
    assert [r["record_id"] for r in jinan] == ["in-1", "in-3"]
    assert [r["record_id"] for r in qingdao] == ["in-2"]
    first = jinan[0]
    assert first["source"] == {"connector": "amr", "department_code": "11370000FE1KM2U90Y", "region_code": "370000"}
    assert first["seq"] < jinan[1]["seq"] and first["version"] == 1 and len(first["digest"]) == 64
    assert first["sharing"] == "unconditional" and first["grade"] == "general"


async def test_every_version_is_served_and_unacked_records_come_again(gw: Signed) -> None:
    """At-least-once: without an ack the inbox starts over; after an ack it continues."""
    await gw.push("amr", [inspection(1)])
    await gw.push("amr", [inspection(1, mode="网络检查")])
    records, cursor = await _drain(gw, "jinan")
    assert [(r["record_id"], r["version"]) for r in records] == [("in-1", 1), ("in-1", 2)]
    again, _ = await _drain(gw, "jinan")
    assert len(again) == 2
    status, body = await gw.call("POST", "/v1/inbox/ack", json.dumps({"cursor": cursor}).encode(), connector="jinan")
    assert status == 200 and body == {"acked": cursor}
    assert (await _drain(gw, "jinan"))[0] == []
    await gw.push("amr", [inspection(5)])
    assert [r["record_id"] for r in (await _drain(gw, "jinan"))[0]] == ["in-5"]


async def test_conditional_and_unsubscribed_records_are_not_served(gw: Signed) -> None:
    """Before sharing rules, only unconditional records of consumed types reach a consumer."""
    await gw.push("amr", [{**inspection(1), "sharing": "conditional"}, {**inspection(2), "sharing": "none"}])
    assert (await _drain(gw, "jinan"))[0] == []


@pytest.mark.parametrize("body", [b"{}", b'{"cursor": "x"}', b'{"cursor": -1}', b"nope"])
async def test_bad_acks_are_400(gw: Signed, body: bytes) -> None:
    """An ack needs a cursor."""
    assert (await gw.call("POST", "/v1/inbox/ack", body, connector="jinan"))[0] == 400


async def test_bad_inbox_parameters_are_400(gw: Signed) -> None:
    """A limit out of range is refused, not silently changed."""
    assert (await gw.call("GET", "/v1/inbox?limit=0", connector="jinan"))[0] == 400
    assert (await gw.call("GET", "/v1/inbox?after=abc", connector="jinan"))[0] == 400


async def test_rejections_are_the_senders_own(gw: Signed) -> None:
    """A rejected record is quarantined with its errors and shown to its sender only."""
    bad = inspection(7)
    bad["data"]["subject"]["cert_no"] = IDENTIFIERS["invalid_uscc"][0]
    await gw.push("amr", [bad])
    status, body = await gw.call("GET", "/v1/rejections", connector="amr")
    assert status == 200
    (row,) = body["rejections"]
    assert row["record_id"] == "in-7" and row["errors"][0]["code"] == "uscc_checksum"
    assert row["record"]["data"]["subject"]["cert_no"] == IDENTIFIERS["invalid_uscc"][0]
    assert (await gw.call("GET", "/v1/rejections", connector="jinan"))[1]["rejections"] == []


async def test_trail_of_a_record(gw: Signed) -> None:
    """The producer sees a record's events; another connector sees none of them."""
    await gw.push("amr", [inspection(1)])
    await gw.push("amr", [inspection(1)])
    status, body = await gw.call("GET", "/v1/records/in-1/trail", connector="amr")
    assert status == 200
    assert [e["event"] for e in body["events"]] == ["received", "stored", "routed", "received", "duplicate"]
    assert body["events"][0]["reason"] == "1 records" and "record_id" not in body["events"][0]
    routed = body["events"][2]
    assert (routed["connector"], routed["counterpart"], routed["reason"]) == ("jinan", "amr", "subscription")
    assert (await gw.call("GET", "/v1/records/in-1/trail", connector="jinan"))[0] == 404


async def test_schemas_for_every_role(gw: Signed) -> None:
    """Connectors, auditors and admins may read the standard interface; others may not."""
    status, body = await gw.call("GET", "/v1/schemas", connector="jinan")
    assert status == 200 and len(body["types"]) == 15
    status, body = await gw.call("GET", "/v1/schemas/penalty", bearer=AUDITOR_TOKEN)
    assert status == 200 and body["$id"] == "urn:supex:v1:penalty"
    assert (await gw.call("GET", "/v1/schemas/nonesuch", bearer=ADMIN_TOKEN))[0] == 404
    assert (await gw.call("GET", "/v1/schemas"))[0] == 401


async def test_audit_endpoints_verify_query_and_export(gw: Signed) -> None:
    """Auditors verify the chain, query entries by filter and export them; each query is itself logged."""
    await gw.push("amr", [inspection(1), inspection(2)])
    status, verdict = await gw.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN)
    assert status == 200 and verdict["ok"] is True and verdict["first_bad_seq"] is None and verdict["entries"] == 5
    status, body = await gw.call("GET", "/v1/audit/events?record_id=in-2&event=stored", bearer=AUDITOR_TOKEN)
    assert [(e["record_id"], e["event"]) for e in body["events"]] == [("in-2", "stored")]
    answer = await gw.client.get("/v1/audit/export", headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"})
    lines = [json.loads(line) for line in (await answer.read()).splitlines()]
    assert answer.headers["Content-Type"].startswith("application/x-ndjson")
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert {"received", "stored", "routed", "audit_query"} <= {e["event"] for e in lines} <= set(EVENTS)
    assert all("data" not in e and "payload" not in e for e in lines)


async def test_a_wrong_bearer_token_is_401(gw: Signed) -> None:
    """An unknown token is not authenticated."""
    assert (await gw.call("GET", "/v1/audit/verify", bearer="not-a-token"))[0] == 401


async def test_health_readiness_and_metrics(gw: Signed) -> None:
    """Liveness, readiness and Prometheus metrics with request, record and log figures."""
    status, health = await gw.call("GET", "/healthz")  # the tests' gateway has no data key, and says so
    assert status == 200 and health["status"] == "ok" and "no data key" in health["warnings"][0]
    assert (await gw.call("GET", "/readyz")) == (200, {"status": "ready"})
    await gw.push("amr", [inspection(1)])
    status, text = await gw.call("GET", "/metrics")
    assert status == 200
    assert 'supex_records_total{status="accepted"} 1.0' in text
    assert 'supex_http_requests_total{method="POST",route="push",status="200"} 1.0' in text
    assert "supex_exchange_log_entries 3.0" in text and "supex_store_commit_seconds_count 1.0" in text
    held = re.search(r"^supex_store_writer_held_seconds_total (\S+)$", text, re.MULTILINE)
    assert held is not None and float(held[1]) > 0  # the push's transaction held the writer
    assert "supex_store_writer_wait_seconds_total" in text


async def test_the_openapi_document_is_valid_and_served(gw: Signed) -> None:
    """The document validates as OpenAPI 3.1 and names every route the app has (the review console's
    HTML pages aside: they are for browsers, not part of the API)."""
    validate_openapi(openapi_document(all_routes()))
    status, served = await gw.call("GET", "/openapi.json")
    assert status == 200 and served["openapi"] == "3.1.0"
    routes = {r.resource.canonical for r in gw.client.app.router.routes() if r.resource}  # type: ignore[union-attr]
    assert {r for r in routes if not r.startswith("/console")} == set(served["paths"])


async def test_logs_hold_no_secrets_or_personal_numbers(gw: Signed) -> None:
    """A full exchange's log lines hold no secret, token, ID number or phone number."""
    clue = {"record_type": "clue", "record_id": "xs-1", "op": "upsert", "occurred_at": "2026-05-01T09:30:00+08:00",
            "region_code": "370102", "data": {"clue_id": "12345-1", "channel": "12345",
                                             "received_at": "2026-05-01T09:30:00+08:00", "description": "反映问题",
                                             "reporter": {"phone": "13812345678", "id_no": "370202199301095154"}}}
    with structlog.testing.capture_logs() as logs:
        await gw.push("amr", [clue])
        await gw.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN)
        await gw.call("GET", f"/v1/inbox?token={AUDITOR_TOKEN}&p=13812345678", connector="jinan")
    text = json.dumps(logs, ensure_ascii=False)
    assert logs
    assert not any(secret in text for secret in SECRETS.values())
    assert "13812345678" not in text and "370202199301095154" not in text


async def test_a_connectors_request_rate_is_limited(tmp_path: Path, aiohttp_client: Any) -> None:
    """Over max_requests_per_second the answer is 429 with Retry-After; the bucket refills with time."""
    text = CONFIG_TEXT.replace('region_code = "370200"', 'region_code = "370200"\nmax_requests_per_second = 2')
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "c.toml", environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()})
    now = [100.0]
    gw = Signed(await aiohttp_client(create_app(config, clock=lambda: NOW, monotonic_clock=lambda: now[0])))
    statuses = [(await gw.inbox("qingdao"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    answer = await gw.client.get("/v1/inbox", headers=signature_headers(
        "qingdao", SECRETS["qingdao"], "GET", "/v1/inbox", b"", now=lambda: NOW))
    assert answer.status == 429 and answer.headers["Retry-After"] == "1"
    now[0] += 0.5
    assert (await gw.inbox("qingdao"))[0] == 200
    assert (await gw.inbox("jinan"))[0] == 200  # other connectors are not limited by it


async def test_a_store_that_cannot_commit_answers_503_and_keeps_nothing(gw: Signed) -> None:
    """If the commit fails the push is refused with 503 and Retry-After, and nothing of it is stored."""
    db = gw.client.app[STORE].store._db
    db.execute("CREATE TRIGGER fail BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    answer = await gw.client.post("/v1/records", data=RAW_ONE, headers={
        **signature_headers("amr", SECRETS["amr"], "POST", "/v1/records", RAW_ONE, now=lambda: NOW),
        "Content-Type": "application/json"})
    assert answer.status == 503 and answer.headers["Retry-After"] == "1"
    db.execute("DROP TRIGGER fail")
    assert (await gw.inbox("jinan"))[1]["records"] == []
    assert (await gw.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN))[1]["ok"] is True
    assert (await gw.push("amr", [inspection(1)]))[1]["accepted"] == 1


async def test_audit_filters_are_read_or_refused_never_matched_against_nothing(gw: Signed) -> None:
    """One instant with any offset selects the same entries, a date is its day in the province;
    an unreadable time, an unknown event, type or party, or a parameter the endpoint does not
    take, is a 400 naming it."""
    await gw.push("amr", [inspection(1)])
    status, every = await gw.call("GET", "/v1/audit/events?event=stored", bearer=AUDITOR_TOKEN)
    at = dt.datetime.fromisoformat(every["events"][0]["at"])
    local = at.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()
    utc_z = at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    seen = []
    for moment in (local, utc_z, at.astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()):
        status, body = await gw.call("GET", f"/v1/audit/events?event=stored&from={quote(moment)}", bearer=AUDITOR_TOKEN)
        assert status == 200, body
        seen.append([e["seq"] for e in body["events"]])
    assert seen[0] == seen[1] == seen[2] == [e["seq"] for e in every["events"]]
    assert (await gw.call("GET", f"/v1/audit/events?event=stored&to={quote(local)}", bearer=AUDITOR_TOKEN))[1][
        "events"] == []
    for query, words in (("from=yesterday", "from must be an ISO 8601"), ("event=stroed", "unknown event 'stroed'"),
                         ("record_type=inspektion", "unknown record type"), ("connector=nobody", "'nobody' is no"),
                         ("since=2026-12-01", "unknown query parameter 'since'"),
                         ("event=stored&event=routed", "'event' is given more than once")):
        status, body = await gw.call("GET", f"/v1/audit/events?{query}", bearer=AUDITOR_TOKEN)
        assert (status, body["error"]["code"]) == (400, "bad_parameter") and words in body["error"]["message"], query
    assert (await gw.call("GET", "/v1/inbox?limit=5&since=3", connector="jinan"))[0] == 400
    assert (await gw.call("GET", "/v1/inbox?limit=5&limit=500", connector="jinan"))[0] == 400  # which was meant?
