"""Sharing through the running gateway: the policy matrix by pull and by push, read limits, time
limits, rules changed at run time, catalogue and reply routing, and `supex policy explain`."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from stdnum.cn import uscc

from connectors.signing import signature_headers
from gateway.cli import main
from gateway.config import Config, load_config
from gateway.http.app import create_app
from gateway.http.context import DELIVERER, IN_FORCE, STORE
from gateway.store.runner import StoreRunner
from tests.backends import Backend
from tests.conftest import VALID_RECORDS
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, NOW, endpoints
from tests.policy.test_policy import CLASSES, expected

KINDS = {"ruled": "", "plain": "", "sor": "system_of_record = true", "far": ""}
CODES = {"src": "11370000FE1KM2U90Y", "ruled": "11370000AL7LL93D6K", "plain": "11370000B7HR4HLY1F",
         "sor": "11370000JUCCNBB658", "far": "11370000FT2JP7NQ02", "hotline": "11370000R3BKC8GB5G"}


def _secret(name: str) -> str:
    return f"secret-{name}-".ljust(28, "x")


def _config_text(endpoints: dict[str, str], rules: str) -> str:
    every = json.dumps(list(VALID_RECORDS))
    text = ('[gateway]\nstore = "sqlite:///supex.db"\nlog_hash = "sha256"\nprepare_processes = 0\n\n'
            f'[[admin]]\nname = "ops"\ntoken_sha256 = "{_sha(ADMIN_TOKEN)}"\n\n'
            f'[[auditor]]\nname = "sec"\ntoken_sha256 = "{_sha(AUDITOR_TOKEN)}"\n\n'
            f'[[connector]]\nid = "src"\nname = "src"\ndepartment_code = "{CODES["src"]}"\nregion_code = "370000"\n'
            f'produces = {every}\n')
    for kind, extra in KINDS.items():
        region = "370200" if kind == "far" else "370000"
        ways = [("", 'delivery = "pull"')]
        if kind in endpoints:
            ways.append(("-push", f'delivery = "push"\nendpoint = "{endpoints[kind]}"'))
        for suffix, delivery in ways:
            code = CODES[kind] if not suffix else CODES[kind][:-2] + "2" + uscc.calc_check_digit(CODES[kind][:-2] + "2")
            text += (f'\n[[connector]]\nid = "{kind}{suffix}"\nname = "{kind}"\ndepartment_code = "{code}"\n'
                     f'region_code = "{region}"\nconsumes = {every}\n{delivery}\n{extra}\n')
    return text + rules


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _matrix_rules() -> str:
    consumers = json.dumps(["ruled", "ruled-push", "far", "far-push"])
    out = ""
    for record_type, record in VALID_RECORDS.items():
        first, second = list(record["data"])[:2]
        mask = f'mask = {{ "{first}" = "keep:1:1" }}\n' if isinstance(record["data"][first], str) else ""
        out += (f'\n[[sharing]]\nid = "{record_type}-rule"\nrecord_types = ["{record_type}"]\n'
                f'consumers = {consumers}\npurpose = "监管"\n'
                f'fields = ["{first}", "{second}"]\n{mask}')
    return out


class Client:
    """Signs as any connector of the test configuration."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def call(self, method: str, path: str, body: bytes = b"", *, connector: str | None = None,
                   bearer: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if connector:
            headers.update(signature_headers(connector, _secret(connector), method, path, body, now=lambda: NOW))
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        answer = await self.client.request(method, path, data=body or None, headers=headers)
        return answer.status, json.loads(await answer.read())

    async def push(self, connector: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        status, body = await self.call("POST", "/v1/records", orjson.dumps(records), connector=connector)
        assert status == 200, body
        return dict(body)

    async def drain(self, connector: str) -> list[dict[str, Any]]:
        status, body = await self.call("GET", "/v1/inbox?limit=1000", connector=connector)
        assert status == 200, body
        return list(body["records"])


class Sink:
    """A push consumer's endpoint that keeps what it receives."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.records.extend(json.loads(await request.read()))
        return web.json_response({})


@pytest.fixture
async def sinks() -> AsyncIterator[dict[str, tuple[Sink, str]]]:
    """One live receiver per kind of push consumer."""
    made = {kind: Sink() for kind in KINDS}
    async with endpoints({kind: sink.handle for kind, sink in made.items()}) as urls:
        yield {kind: (made[kind], url) for kind, url in urls.items()}


def _load(tmp_path: Path, text: str, backend: Backend | None = None) -> Config:
    """The configuration, its store on ``backend`` if given (a file beside it otherwise)."""
    if backend is not None:
        text = text.replace('store = "sqlite:///supex.db"', f'store = "{backend.setting}"')
    (tmp_path / "supex.toml").write_text(text, encoding="utf-8")
    names = ["src", "hotline", "housing", "county", *(f"{k}{s}" for k in KINDS for s in ("", "-push"))]
    return load_config(tmp_path / "supex.toml",
                       environ={f"SUPEX_SECRET_{n.upper().replace('-', '_')}": _secret(n) for n in names})


AppMaker = Callable[..., Awaitable[tuple[Client, web.Application]]]


@pytest.fixture
def make(aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> AppMaker:
    """Start a gateway (deliveries run by the test) for a configuration."""
    async def start(config: Config, store: StoreRunner | None = None) -> tuple[Client, web.Application]:
        app = create_app(config, clock=lambda: NOW, deliver=False, store=store)
        return Client(await aiohttp_client(app)), app

    return start


def _matrix_records() -> list[dict[str, Any]]:
    records = []
    for sharing in CLASSES:
        for record_type, valid in VALID_RECORDS.items():
            record = copy.deepcopy(valid)
            record.update(record_id=f"{record_type}-{sharing}", region_code="370102", sharing=sharing)
            record.pop("version", None)
            if record_type == "risk_warning":
                record["data"].pop("target_department_codes", None)
            if record_type in ("clue", "risk_warning"):
                record["data"].pop("matter_code", None)  # catalogue routing is tested on its own
            records.append(record)
    return records


async def test_the_policy_matrix_by_pull_and_by_push(tmp_path: Path, backend: Backend, make: AppMaker,
                                                     sinks: dict[str, tuple[Sink, str]]) -> None:
    """Every type × class reaches each kind of consumer exactly as the sharing rules say, pulled or pushed."""
    config = _load(tmp_path, _config_text({k: url for k, (_, url) in sinks.items()}, _matrix_rules()), backend)
    client, app = await make(config)
    pushed = await client.push("src", _matrix_records())
    assert pushed["accepted"] == len(_matrix_records())
    stored = {}
    for record_id, payload, version, seq in backend.rows("SELECT record_id, payload, version, seq FROM changes"):
        stored[record_id] = {**orjson.loads(bytes(payload)), "version": version, "seq": seq}
    for kind in KINDS:
        while await app[DELIVERER].deliver_once(f"{kind}-push") == 0:
            pass
        pulled = {r["record_id"]: r for r in await client.drain(kind)}
        pushed_to = {r["record_id"]: r for r in sinks[kind][0].records}
        for record_id, record in stored.items():
            want = expected(record, {"sor": "system-of-record", "far": "out-of-jurisdiction"}.get(kind, kind))
            assert pulled.get(record_id) == want, (kind, record_id)
            assert pushed_to.get(record_id) == want, (kind + "-push", record_id)


async def test_read_limits_overdue_deliveries_and_rules_changed_at_run_time(tmp_path: Path, backend: Backend,
                                                                           make: AppMaker) -> None:
    """``max_reads_per_day`` answers 429 with Retry-After; a late first serving is flagged overdue;
    a rule disabled through the admin API stops sharing, logged as a configuration change."""
    rule = ('\n[[sharing]]\nid = "clue-rule"\nrecord_types = ["clue"]\nconsumers = ["ruled"]\npurpose = "核查"\n'
            'fields = ["clue_id", "reporter.phone"]\nmask = { "reporter.phone" = "phone" }\n'
            'deliver_within = "1s"\nmax_reads_per_day = 3\n')
    config = _load(tmp_path, _config_text({}, rule), backend)
    moment = [dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC)]
    runner = StoreRunner(backend.open(clock=lambda: moment[0]))
    client, _ = await make(config, runner)
    record = copy.deepcopy(VALID_RECORDS["clue"])
    record.pop("version", None)
    record["data"].pop("matter_code", None)
    await client.push("src", [record])
    moment[0] += dt.timedelta(seconds=2)
    served = await client.drain("ruled")  # served for the first time 2 s after it arrived
    assert served[0]["data"]["reporter"]["phone"] == "138****5678"
    assert set(served[0]["data"]) == {"clue_id", "reporter"}
    status, events = await client.call("GET", "/v1/audit/events?connector=ruled", bearer=AUDITOR_TOKEN)
    by_event = {e["event"]: e for e in events["events"]}
    assert {"routed", "delivered", "overdue", "pulled"} <= set(by_event)
    delivered = by_event["delivered"]
    assert (delivered["rule"], delivered["purpose"], delivered["masked"]) == ("clue-rule", "核查", ["reporter.phone"])
    assert delivered["fields"] == ["clue_id", "reporter.phone"]
    assert "reporter.id_no" in delivered["reason"] and "subject" in delivered["reason"]  # what was left out
    assert "13812345678" not in json.dumps(events, ensure_ascii=False)
    metrics = await (await client.client.get("/metrics")).text()
    assert 'supex_overdue_deliveries_total{consumer="ruled"} 1.0' in metrics
    await client.drain("ruled")
    await client.drain("ruled")
    status, body = await client.call("GET", "/v1/inbox", connector="ruled")
    assert status == 429 and body["error"]["code"] == "read_limit"
    status, body = await client.call("POST", "/v1/admin/sharing/clue-rule/disable", bearer=ADMIN_TOKEN)
    assert status == 200 and body["rule"]["enabled"] is False
    record2 = {**record, "record_id": "clue-2"}
    await client.push("src", [record2])
    status, events = await client.call("GET", "/v1/audit/events?record_id=clue-2", bearer=AUDITOR_TOKEN)
    denied = [e for e in events["events"] if e["event"] == "denied" and e["connector"] == "ruled"]
    assert denied and "no sharing rule applies" in denied[0]["reason"]
    status, events = await client.call("GET", "/v1/audit/events?event=config_changed", bearer=AUDITOR_TOKEN)
    assert [(e["rule"], e["reason"], e["counterpart"]) for e in events["events"]] == [("clue-rule", "disabled", "ops")]


@pytest.mark.parametrize(("rule", "status", "words"), [
    ({"id": "x", "record_types": ["clue"], "consumers": ["nobody"], "purpose": "p"}, 400, "unknown consumers"),
    ({"id": "x", "record_types": ["clue"], "consumers": ["ruled"], "purpose": "p", "fields": ["nope"]}, 400,
     "no field 'nope'"),
    ({"id": "x", "record_types": ["clue"], "consumers": ["ruled"], "purpose": "p", "mask": {"clue_id": "x"}}, 400,
     "unknown mask"),
    ({"id": "x", "record_types": ["clue"], "consumers": ["ruled"]}, 400, "purpose"),
    ({"id": "x", "record_types": ["clue"], "consumers": ["ruled"], "purpose": "p"}, 201, "added"),
])
async def test_the_admin_api_checks_rules(tmp_path: Path, make: AppMaker, rule: dict[str, Any], status: int,
                                          words: str) -> None:
    """A rule naming what does not exist is refused with the reason; a good one is added."""
    client, _ = await make(_load(tmp_path, _config_text({}, "")))
    answer, body = await client.call("POST", "/v1/admin/sharing", orjson.dumps(rule), bearer=ADMIN_TOKEN)
    assert answer == status and words in json.dumps(body)
    if status == 201:
        listed = (await client.call("GET", "/v1/admin/sharing", bearer=ADMIN_TOKEN))[1]
        assert [r["id"] for r in listed["rules"]] == ["x"]
        again, _ = await client.call("POST", "/v1/admin/sharing", orjson.dumps(rule), bearer=ADMIN_TOKEN)
        assert again == 409
        assert (await client.call("POST", "/v1/admin/sharing", orjson.dumps(rule), connector="ruled"))[0] == 403


async def test_a_refused_change_keeps_nothing(tmp_path: Path, make: AppMaker) -> None:
    """The policy in force is changed only by a change that fits: a refused rule is neither kept
    nor logged, and routing goes on under the rules as they were."""
    client, app = await make(_load(tmp_path, _config_text({}, "")))
    before = app[IN_FORCE].policy
    rule = {"id": "x", "record_types": ["clue"], "consumers": ["nobody"], "purpose": "p"}
    assert (await client.call("POST", "/v1/admin/sharing", orjson.dumps(rule), bearer=ADMIN_TOKEN))[0] == 400
    assert (await client.call("GET", "/v1/admin/sharing", bearer=ADMIN_TOKEN))[1]["rules"] == []
    assert await app[STORE].call(app[STORE].store.runtime.last_change) == 0
    assert app[IN_FORCE].policy is before


async def test_a_rule_added_at_run_time_survives_a_restart(tmp_path: Path, backend: Backend, make: AppMaker) -> None:
    """Rules changed through the admin API are kept in the store and used after a restart."""
    config = _load(tmp_path, _config_text({}, ""), backend)
    client, _ = await make(config)
    rule = {"id": "late", "record_types": ["clue"], "consumers": ["ruled"], "purpose": "核查", "fields": ["clue_id"]}
    assert (await client.call("POST", "/v1/admin/sharing", orjson.dumps(rule), bearer=ADMIN_TOKEN))[0] == 201
    await client.client.close()
    client, _ = await make(config)
    record = copy.deepcopy(VALID_RECORDS["clue"])
    record.pop("version", None)
    record["data"].pop("matter_code", None)
    await client.push("src", [record])
    assert [set(r["data"]) for r in await client.drain("ruled")] == [{"clue_id"}]


async def test_catalogue_and_reply_routing(tmp_path: Path, backend: Backend, make: AppMaker) -> None:
    """A clue goes to its matter's lead department, which does not subscribe to clues; a county
    connector elsewhere does not get it; the feedback goes back to the clue's producer."""
    text = _config_text({}, "")
    text += (f'\n[[connector]]\nid = "hotline"\nname = "12345"\ndepartment_code = "{CODES["hotline"]}"\n'
             'region_code = "370000"\nproduces = ["clue"]\n'
             '\n[[connector]]\nid = "housing"\nname = "住建"\ndepartment_code = "1137000081D905EA9B"\n'
             'region_code = "370000"\nconsumes = ["license"]\nproduces = ["feedback"]\n'
             '\n[[connector]]\nid = "county"\nname = "历下区"\ndepartment_code = "113700005446YKAR96"\n'
             'region_code = "370102"\nconsumes = ["clue"]\n')
    client, _ = await make(_load(tmp_path, text, backend))
    matter = copy.deepcopy(VALID_RECORDS["matter"])
    matter.pop("version", None)
    matter["data"].update(lead_department_code="1137000081D905EA9B", co_department_codes=[])
    assert (await client.push("src", [matter]))["accepted"] == 1
    clue = copy.deepcopy(VALID_RECORDS["clue"])
    clue.pop("version", None)
    clue.update(sharing="unconditional", region_code="370602")
    clue["data"]["matter_code"] = matter["data"]["matter_code"]
    assert (await client.push("hotline", [clue]))["accepted"] == 1
    assert [r["record_id"] for r in await client.drain("housing")] == [clue["record_id"]]
    assert await client.drain("county") == []
    feedback = copy.deepcopy(VALID_RECORDS["feedback"])
    feedback.pop("version", None)
    feedback["data"]["refers_to"] = {"record_type": "clue", "record_id": clue["record_id"], "connector": "hotline"}
    await client.push("housing", [feedback])
    assert [r["record_id"] for r in await client.drain("hotline")] == [feedback["record_id"]]


def test_policy_explain_names_the_rule_and_shows_the_masked_record(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`supex policy explain`: the rule, the fields and masks, and the record as the consumer gets it;
    for a consumer without a rule, why it gets nothing."""
    rule = ('\n[[sharing]]\nid = "clue-rule"\nrecord_types = ["clue"]\nconsumers = ["ruled"]\npurpose = "核查"\n'
            'fields = ["clue_id", "reporter.phone"]\nmask = { "reporter.phone" = "phone" }\n')
    _load(tmp_path, _config_text({}, rule))
    record = tmp_path / "clue.json"
    record.write_text(json.dumps(VALID_RECORDS["clue"], ensure_ascii=False), encoding="utf-8")
    config = str(tmp_path / "supex.toml")
    assert main(["policy", "explain", "--config", config, "--record", str(record), "--to", "ruled"]) == 0
    out = capsys.readouterr().out
    assert "clue-rule" in out and "138****5678" in out and "13812345678" not in out and "reporter.phone" in out
    assert main(["policy", "explain", "--config", config, "--record", str(record), "--to", "plain", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["allowed"] is False and "no rule names this consumer" in result["reason"]
    assert main(["policy", "explain", "--config", config, "--record", str(record), "--to", "far"]) == 0
    assert "outside its jurisdiction" in capsys.readouterr().out
    assert main(["policy", "explain", "--config", config, "--record", str(record), "--to", "ghost"]) == 2


async def test_a_connector_disabled_at_run_time_is_cut_off_until_enabled(tmp_path: Path, backend: Backend,
                                                                        make: AppMaker) -> None:
    """Disabled: its requests are refused and nothing is routed to it; enabled again: back in.
    The state survives a restart, and both changes are logged with the admin's name."""
    config = _load(tmp_path, _config_text({}, ""), backend)
    client, _ = await make(config)
    status, body = await client.call("POST", "/v1/admin/connectors/plain/disable", bearer=ADMIN_TOKEN)
    assert (status, body) == (200, {"connector": "plain", "enabled": False})
    status, body = await client.call("GET", "/v1/inbox", connector="plain")
    assert status == 401 and "disabled" in body["error"]["message"]
    record = copy.deepcopy(VALID_RECORDS["inspection"])
    record.pop("version", None)
    await client.push("src", [record])
    listed = (await client.call("GET", "/v1/admin/connectors", bearer=ADMIN_TOKEN))[1]["connectors"]
    assert {c["id"]: c["enabled"] for c in listed}["plain"] is False
    await client.client.close()
    client, _ = await make(config)  # a restart keeps it disabled
    assert (await client.call("GET", "/v1/inbox", connector="plain"))[0] == 401
    assert (await client.call("POST", "/v1/admin/connectors/plain/enable", bearer=ADMIN_TOKEN))[0] == 200
    assert await client.drain("plain") == []  # what was stored while it was disabled was not routed to it
    await client.push("src", [{**record, "record_id": "after"}])
    assert [r["record_id"] for r in await client.drain("plain")] == ["after"]
    assert (await client.call("POST", "/v1/admin/connectors/ghost/disable", bearer=ADMIN_TOKEN))[0] == 404
    events = (await client.call("GET", "/v1/audit/events?event=config_changed", bearer=AUDITOR_TOKEN))[1]["events"]
    assert [(e["connector"], e["reason"], e["counterpart"]) for e in events] == [
        ("plain", "connector disabled", "ops"), ("plain", "connector enabled", "ops")]


async def test_a_change_made_at_one_gateway_is_taken_up_by_the_others(tmp_path: Path, backend: Backend,
                                                                      make: AppMaker) -> None:
    """Two gateways on one database: a connector disabled through one is refused by the other
    once it has looked for changes (every two seconds while it serves)."""
    if backend.name == "sqlite":
        pytest.skip("one gateway serves a SQLite file; several gateways share a PostgreSQL database")
    config = _load(tmp_path, _config_text({}, ""), backend)
    one, _ = await make(config)
    other, other_app = await make(config)
    seen = await other_app[STORE].call(other_app[STORE].store.runtime.last_change)
    assert (await one.call("POST", "/v1/admin/connectors/plain/disable", bearer=ADMIN_TOKEN))[0] == 200
    assert (await other.call("GET", "/v1/inbox", connector="plain"))[0] == 200  # not yet looked
    assert await other_app[IN_FORCE].follow() > seen
    assert (await other.call("GET", "/v1/inbox", connector="plain"))[0] == 401
