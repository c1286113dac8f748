"""Role separation (GB/T 39477 管理/审计/操作分离): each endpoint admits its roles only, and every
refusal is a 401 or 403, logged and counted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, Signed, inspection

RULE = {"id": "matrix-rule", "record_types": ["clue"], "consumers": ["jinan"], "purpose": "核查", "fields": ["clue_id"]}
ENDPOINTS: list[tuple[str, str, bytes, frozenset[str]]] = [
    ("POST", "/v1/records", b"[]", frozenset({"connector"})),
    ("GET", "/v1/inbox", b"", frozenset({"connector"})),
    ("POST", "/v1/inbox/ack", b'{"cursor": "0"}', frozenset({"connector"})),
    ("GET", "/v1/rejections", b"", frozenset({"connector"})),
    ("GET", "/v1/records/in-1/trail", b"", frozenset({"connector"})),
    ("GET", "/v1/schemas", b"", frozenset({"connector", "auditor", "admin"})),
    ("GET", "/v1/audit/events", b"", frozenset({"auditor"})),
    ("GET", "/v1/audit/verify", b"", frozenset({"auditor"})),
    ("GET", "/v1/audit/export", b"", frozenset({"auditor"})),
    ("GET", "/v1/admin/connectors", b"", frozenset({"admin"})),
    ("POST", "/v1/admin/sharing", json.dumps(RULE).encode(), frozenset({"admin"})),
    ("GET", "/v1/admin/deadletters", b"", frozenset({"admin"})),
    ("POST", "/v1/admin/policy/explain", b"{}", frozenset({"admin"})),
]
CALLERS: dict[str, dict[str, Any]] = {"connector": {"connector": "amr"}, "auditor": {"bearer": AUDITOR_TOKEN},
                                      "admin": {"bearer": ADMIN_TOKEN}, "nobody": {}}


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize(("method", "path", "body", "roles"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
async def test_each_endpoint_admits_its_roles_only(gw: Signed, caller: str, method: str, path: str, body: bytes,
                                                    roles: frozenset[str]) -> None:
    with capture_logs() as logs:
        status, answer = await gw.call(method, path, body, **CALLERS[caller])
    if caller in roles:
        assert status not in (401, 403), answer
        return
    assert status == (401 if caller == "nobody" else 403), answer
    refused = [e for e in logs if e["event"] == "refused"]
    assert refused and refused[0]["status"] == status and refused[0]["path"] == path


async def test_refusals_are_counted(gw: Signed) -> None:
    await gw.call("GET", "/v1/audit/events", connector="amr")
    await gw.call("GET", "/v1/inbox", bearer=AUDITOR_TOKEN)
    await gw.call("GET", "/v1/audit/events")
    _, metrics = await gw.call("GET", "/metrics")
    assert 'supex_auth_refusals_total{status="403"} 2.0' in metrics
    assert 'supex_auth_refusals_total{status="401"} 1.0' in metrics


async def test_no_role_reads_payloads_outside_its_own(gw: Signed) -> None:
    """Auditors see metadata, admins configuration: a record's values reach neither."""
    record = inspection(1, action_name="独有标记ZQ81")
    assert (await gw.push("amr", [record]))[0] == 200
    for path, token in (("/v1/audit/events", AUDITOR_TOKEN), ("/v1/audit/export", AUDITOR_TOKEN),
                        ("/v1/admin/connectors", ADMIN_TOKEN), ("/v1/admin/deadletters", ADMIN_TOKEN)):
        status, answer = await gw.call("GET", path, bearer=token)
        assert status == 200 and "独有标记ZQ81" not in json.dumps(answer, ensure_ascii=False), path
