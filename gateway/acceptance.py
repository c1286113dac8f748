"""``supex connector test``: the acceptance suite a connector passes before it goes live.

Run against a running gateway with the connector's configuration and secret, it checks what the
connector's team must be sure of: its signatures are accepted and forged ones refused, its sample
records map and validate, re-pushing is idempotent, versions and deletes behave, a full batch
goes through, its format's encoding and XML edge cases are handled, and deliveries reach it.

Every record it pushes, the mapping's examples too, has an id of its own run,
``conntest-<run>-…``: it never changes a record it did not create. Those records are stored and
routed like any other and are left in the store (the suite says how many, under which ids), so
run it against a test gateway or before the connector's consumers go live.

A check ends ``pass``, ``fail``, ``skip`` (it does not apply to this connector: a consumer's
delivery check for a producer) or ``not run`` (it applies, but could not be run: the suite fails).

The suite is one module, longer than the others, on purpose: its checks read in the order they
run, each with the helpers it alone uses beside it.
"""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from lxml import etree
from yarl import URL

from connectors.exceptions import UnreachableError
from connectors.signing import signature_headers
from connectors.transport import send
from gateway.config import Config, ConnectorConfig, load_config, resolve_mapping
from gateway.exceptions import ConfigError
from mappings import CompiledMapping, run_examples
from mappings.exceptions import ValueMappingError
from mappings.formats import parse_xml
from mappings.media import WRITTEN_AS
from mappings.pipeline import reverse_all, write_rows
from schemas import Validator, example_record

__all__ = ["FAIL", "NOT_RUN", "PASS", "SKIP", "CheckResult", "ConnectorSuite"]

PASS, FAIL, SKIP, NOT_RUN = "pass", "fail", "skip", "not run"
_XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<r><a>&x;</a></r>")
_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
           b"<l>&b;</l>")


@dataclass(frozen=True)
class CheckResult:
    """One row of the suite's table."""

    name: str
    outcome: str  # pass | fail | skip | not run
    detail: str

    def as_dict(self) -> dict[str, str]:
        """The row as JSON."""
        return {"check": self.name, "outcome": self.outcome, "detail": self.detail}


class _Outcome(Exception):  # noqa: N818 - not an error: how a check ends early
    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


def _fail(detail: str) -> _Outcome:
    return _Outcome(FAIL, detail)


def _skip(detail: str) -> _Outcome:
    """The check does not apply to this connector."""
    return _Outcome(SKIP, detail)


def _not_run(detail: str) -> _Outcome:
    """The check applies to this connector but could not be run."""
    return _Outcome(NOT_RUN, detail)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any

    def message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return f"{self.status} {self.body['error'].get('message', '')}".strip()
        return f"{self.status} {str(self.body)[:160]}".strip()


class ConnectorSuite:
    """The acceptance checks for one connector against the gateway at ``url``."""

    def __init__(self, config: Config, connector_id: str, url: str, *, run_id: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.connector: ConnectorConfig = config.connectors()[connector_id]
        self.secret = config.secrets[connector_id]
        self.url = url.rstrip("/")
        self.run_id = run_id or secrets.token_hex(4)
        self._clock = clock
        name = self.connector.mapping_name
        self.mapping: CompiledMapping | None = resolve_mapping(name, config.base_dir) if name else None
        self.validator = Validator(identifiers=self.connector.identifiers)
        self._session: aiohttp.ClientSession | None = None
        self._counter = 0
        self._lifecycle: dict[str, Any] | None = None  # the record the version checks go on with
        self.left: set[str] = set()  # ids of the records this run stored

    # ---- running ----------------------------------------------------------------------------------

    def checks(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        """The checks in the order they run, by their names."""
        return [
            ("网关可达 / gateway reachable", self.gateway_reachable),
            ("签名请求被接受 / a signed request is accepted", self.signature_accepted),
            ("错误签名被拒 / a wrong signature is refused", self.wrong_signature_refused),
            ("过期时间戳被拒 / a stale timestamp is refused", self.stale_timestamp_refused),
            ("重放被拒 / a replayed nonce is refused", self.replay_refused),
            ("样例映射并校验 / sample records map and validate", self.samples_validate),
            ("样例被网关接收 / samples in the connector's format are accepted", self.samples_accepted),
            ("重复推送幂等 / re-pushing is idempotent", self.repush_idempotent),
            ("高版本生效 / a higher version applies", self.higher_version_applies),
            ("旧版本不生效 / a stale version does not apply", self.stale_version_refused),
            ("删除 / a delete is stored", self.delete_stored),
            ("记录轨迹 / the record's trail shows what happened", self.trail_shows_history),
            ("整批推送 / a full batch", self.full_batch),
            ("编码与格式边界 / encoding and format edge cases", self.edge_cases),
            ("向连接器交付 / delivery to the connector", self.delivery_reaches),
            ("接收方验证签名 / the connector's endpoint verifies signatures", self.endpoint_verifies),
        ]

    async def run(self, on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
        """Run every check; a check that fails does not stop the others."""
        results = []
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        try:
            for name, check in self.checks():
                try:
                    result = CheckResult(name, PASS, await check())
                except _Outcome as exc:
                    result = CheckResult(name, exc.outcome, exc.detail)
                except (UnreachableError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                    result = CheckResult(name, FAIL, f"无法连接 / cannot connect: {type(exc).__name__} {exc}")
                results.append(result)
                if on_result is not None:
                    on_result(result)
        finally:
            await self._session.close()
        return results

    # ---- HTTP -------------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: bytes = b"", *, content_type: str = "application/json",
                    secret: str | None = None, now: float | None = None,
                    headers: dict[str, str] | None = None) -> tuple[_Answer, dict[str, str]]:
        assert self._session is not None
        url = URL(self.url + path)
        if headers is None:
            headers = signature_headers(self.connector.id, secret or self.secret, method, url.raw_path_qs, body,
                                        now=(lambda: now) if now is not None else self._clock)
        answer = await send(self._session, method, url, body, key=self.connector.id, secret=self.secret,
                            content_type=content_type, headers=headers)
        try:
            value: Any = orjson.loads(answer.body) if answer.body else None
        except orjson.JSONDecodeError:
            value = answer.body[:200].decode("utf-8", errors="replace")
        return _Answer(answer.status, value), headers

    async def _push(self, body: bytes, content_type: str) -> dict[str, Any]:
        answer, _ = await self._call("POST", "/v1/records", body, content_type=content_type)
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise _fail(f"推送被拒 / the push was refused: {answer.message()}")
        self.left.update(r["record_id"] for r in answer.body.get("results", [])
                         if r.get("status") == "accepted" and isinstance(r.get("record_id"), str))
        return answer.body

    # ---- records ----------------------------------------------------------------------------------

    def _record_type(self) -> str:
        produces = self.connector.produces
        if not produces:
            raise _skip("连接器不产生记录 / the connector produces no records")
        if self.mapping is not None and self.mapping.record_type in produces:
            return self.mapping.record_type
        return produces[0]

    def _base_record(self) -> dict[str, Any]:
        record_type = self._record_type()
        if self.mapping is not None and self.mapping.record_type == record_type:
            for example in self.mapping.definition.example:
                if example.errors is None and isinstance(example.expect, dict):
                    return copy.deepcopy(example.expect)
        return example_record(record_type)

    def _record(self, version: int | None = 1, **changes: Any) -> dict[str, Any]:
        self._counter += 1
        record = self._base_record()
        record.update(record_id=f"conntest-{self.run_id}-{self._counter}", **changes)
        record.pop("version", None)
        if version is not None:
            record["version"] = version
        return record

    def _encode(self, records: list[dict[str, Any]], *, lines: bool = False) -> tuple[bytes, str]:
        """Standard records as the connector pushes them: its own JSON rows where its mapping reads
        JSON, otherwise standard JSON (which every connector may push beside its XML or CSV)."""
        mapping = self.mapping
        if mapping is None or mapping.format != "json":
            if lines:
                return b"\n".join(orjson.dumps(r) for r in records), "application/x-ndjson"
            return orjson.dumps(records), WRITTEN_AS["json"]
        if not mapping.reversible:
            raise _not_run(f"映射 {mapping.name} 不可逆，无法生成测试记录 / the mapping {mapping.name} is not "
                           "reversible, so no test records can be written in the connector's JSON")
        try:
            rows = reverse_all(mapping, records)
        except ValueMappingError as exc:
            raise _fail(f"{mapping.name} cannot write the test record: {exc}") from None
        out = io.BytesIO()
        write_rows(mapping, rows, out, lines=lines)
        return out.getvalue(), WRITTEN_AS["ndjson"] if lines else WRITTEN_AS["json"]

    async def _push_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body, content_type = self._encode(records)
        results: list[dict[str, Any]] = (await self._push(body, content_type))["results"]
        return results

    async def _status_of(self, record: dict[str, Any]) -> dict[str, Any]:
        (result,) = await self._push_records([record])
        return result

    # ---- the checks -------------------------------------------------------------------------------

    async def gateway_reachable(self) -> str:
        """GET /healthz answers 200."""
        assert self._session is not None
        async with self._session.get(self.url + "/healthz") as answer:
            if answer.status != 200:
                raise _fail(f"/healthz answered {answer.status}")
        return self.url

    async def signature_accepted(self) -> str:
        """A request signed with the connector's secret is answered 200."""
        answer, _ = await self._call("GET", "/v1/schemas")
        if answer.status == 401:
            raise _fail(f"{answer.message()} — 检查密钥是否与网关一致 / check that the secret "
                        f"(SUPEX_SECRET_{self.connector.id.upper().replace('-', '_')} or the secrets file) is "
                        "the one the gateway has")
        if answer.status != 200:
            raise _fail(answer.message())
        return "GET /v1/schemas 200"

    async def wrong_signature_refused(self) -> str:
        """The same request signed with another secret is answered 401."""
        answer, _ = await self._call("GET", "/v1/schemas", secret=self.secret + "-wrong")
        if answer.status != 401:
            raise _fail(f"expected 401, got {answer.status}")
        return "401"

    async def stale_timestamp_refused(self) -> str:
        """A signature an hour old is answered 401."""
        answer, _ = await self._call("GET", "/v1/schemas", now=self._clock() - 3600)
        if answer.status != 401:
            raise _fail(f"expected 401, got {answer.status}")
        return "401"

    async def replay_refused(self) -> str:
        """The same signed request sent twice: the second is answered 401."""
        first, headers = await self._call("GET", "/v1/schemas")
        again, _ = await self._call("GET", "/v1/schemas", headers=headers)
        if first.status != 200 or again.status != 401:
            raise _fail(f"expected 200 then 401, got {first.status} then {again.status}")
        return "200, then 401"

    async def samples_validate(self) -> str:
        """The mapping's examples hold (offline); without a mapping, an example of each produced type validates."""
        if self.mapping is not None:
            outcomes = run_examples(self.mapping, self.validator)
            bad = [f"{o.name}: {o.problems[0]}" for o in outcomes if not o.ok]
            if bad:
                raise _fail("; ".join(bad))
            return f"{len(outcomes)} examples of {self.mapping.name}"
        if not self.connector.produces:
            raise _skip("连接器不产生记录 / the connector produces no records")
        for record_type in self.connector.produces:
            verdict = self.validator.validate(example_record(record_type))
            if not verdict.ok:
                raise _fail(f"{record_type}: {verdict.errors[0].code} at {verdict.errors[0].path}")
        return ", ".join(self.connector.produces)

    async def samples_accepted(self) -> str:
        """The mapping's example sources, pushed in the connector's own format, are all taken."""
        mapping = self.mapping
        if mapping is None:
            raise _skip("连接器以标准记录推送（见后续检查）/ the connector pushes standard records (checked below)")
        sources = self._example_sources()
        if mapping.format == "xlsx":
            raise _not_run("xlsx 样例无法写成工作簿 / xlsx examples cannot be written as a workbook here: push a "
                           "sample export with supex push")
        body = _source_body(mapping, sources)
        answer = await self._push(body, WRITTEN_AS[mapping.format])
        bad = [r for r in answer["results"] if r["status"] not in ("accepted", "duplicate")]
        if bad:
            raise _fail(f"{len(bad)} of {len(sources)} not taken: {bad[0].get('errors') or bad[0]['status']}")
        return f"{len(sources)} records as {mapping.format.upper()}"

    def _example_sources(self) -> list[Any]:
        """The mapping's example sources (those that must map), each under an id of this run."""
        mapping = self.mapping
        assert mapping is not None
        sources = []
        for example in mapping.definition.example:
            if example.errors is not None:
                continue
            self._counter += 1
            new_id = f"conntest-{self.run_id}-{self._counter}"
            source = _with_record_id(mapping, example.source, new_id)
            if source is None:
                raise _not_run(f"示例 {example.name!r} 的记录编号无法改写 / the record id of example {example.name!r} "
                               "cannot be set to a test id (its record_id rule is not a plain read), so it is not "
                               "pushed: that would change a real record")
            sources.append(source)
        if not sources:
            raise _not_run(f"映射 {mapping.name} 没有示例 / the mapping {mapping.name} has no examples to push")
        return sources

    async def repush_idempotent(self) -> str:
        """A record pushed twice is stored once: the second push answers ``duplicate``."""
        self._record_type()
        record = self._record(version=1)
        first = await self._status_of(record)
        again = await self._status_of(record)
        if (first["status"], again["status"]) != ("accepted", "duplicate"):
            raise _fail(f"expected accepted then duplicate, got {first['status']} then {again['status']}"
                        + (f" ({first.get('errors')})" if first.get("errors") else ""))
        self._lifecycle = record
        return f"{record['record_id']}: accepted, then duplicate"

    def _kept(self) -> dict[str, Any]:
        self._record_type()
        record = self._lifecycle
        if record is None:
            raise _not_run("需要前一项检查通过 / needs the idempotency check to pass first")
        return copy.deepcopy(record)

    async def higher_version_applies(self) -> str:
        """Version 2 of the record, changed, is accepted as version 2."""
        record = self._kept()
        record["version"] = 2
        _touch(record)
        result = await self._status_of(record)
        if (result["status"], result.get("version")) != ("accepted", 2):
            raise _fail(f"expected accepted as version 2, got {result['status']} {result.get('version')}")
        return "accepted as version 2"

    async def stale_version_refused(self) -> str:
        """Version 1 again, after version 2, does not apply: ``stale``."""
        record = self._kept()
        _touch(record, "stale")
        result = await self._status_of(record)
        if result["status"] != "stale":
            raise _fail(f"expected stale, got {result['status']}")
        return "stale"

    async def delete_stored(self) -> str:
        """``op = delete`` with version 3 is accepted."""
        record = self._kept()
        record.update(op="delete", version=3)
        result = await self._status_of(record)
        if (result["status"], result.get("version")) != ("accepted", 3):
            raise _fail(f"expected accepted as version 3, got {result['status']} {result.get('version')}")
        return "accepted as version 3"

    async def trail_shows_history(self) -> str:
        """The record's trail shows it stored in three versions."""
        record = self._kept()
        answer, _ = await self._call("GET", f"/v1/records/{record['record_id']}/trail")
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise _fail(answer.message())
        events = [e.get("event") for e in answer.body.get("events", [])]
        stored = events.count("stored")
        if stored != 3 or "duplicate" not in events or "stale" not in events:
            raise _fail(f"expected 3 stored, a duplicate and a stale event, got {events}")
        return f"{len(events)} events"

    async def full_batch(self) -> str:
        """A batch of as many records as the gateway takes at once (10,000 by default) is accepted whole."""
        self._record_type()
        gateway = self.config.gateway
        count = min(10_000, gateway.max_records)
        records = [self._record(version=1) for _ in range(count)]
        body, content_type = self._encode(records)
        while len(body) > gateway.max_body and count > 1:
            count = count * gateway.max_body // len(body) * 9 // 10
            records = records[:count]
            body, content_type = self._encode(records)
        started = time.perf_counter()
        answer = await self._push(body, content_type)
        seconds = time.perf_counter() - started
        if answer["accepted"] != count:
            bad: dict[str, Any] = next((r for r in answer["results"] if r["status"] != "accepted"), {})
            raise _fail(f"{answer['accepted']} of {count} accepted; first other: {bad}")
        return f"{count} records in {seconds:.1f} s ({count / seconds:,.0f} records/s)"

    async def edge_cases(self) -> str:
        """What the connector's format may hold at its edges is read right, and what it must not is refused."""
        self._record_type()
        done = []
        record = self._record(version=1)
        _touch(record, "𠀾𡈽 ＡＢＣ \u3000 emoji 🏛")
        (result,) = await self._push_records([record])
        if result["status"] != "accepted":
            raise _fail(f"characters outside the BMP refused: {result.get('errors')}")
        done.append("non-BMP characters")
        body, content_type = self._encode([self._record(version=1), self._record(version=1)], lines=True)
        answer = await self._push(body, content_type)
        if answer["accepted"] != 2:
            raise _fail(f"NDJSON: {answer['accepted']} of 2 accepted")
        done.append("NDJSON")
        body, content_type = self._encode([self._record(version=1)])
        wrong, _ = await self._call("POST", "/v1/records", body.decode().encode("gb18030") + "统一".encode("gb18030"),
                                    content_type=content_type)
        if wrong.status != 400:
            raise _fail(f"JSON not in UTF-8 should be refused with 400, got {wrong.status}")
        done.append("non-UTF-8 JSON refused")
        if self.mapping is not None and self.mapping.format == "xml":
            for name, hostile in (("external entity", _XXE), ("entity expansion", _LAUGHS)):
                answer_, _ = await self._call("POST", "/v1/records", hostile, content_type="application/xml")
                if answer_.status != 400:
                    raise _fail(f"XML with an {name} should be refused with 400, got {answer_.status}")
                done.append(f"XML {name} refused")
        if self.mapping is not None and self.mapping.format == "csv":
            text = _source_body(self.mapping, self._example_sources()).decode("utf-8")
            for encoding, data in (("GB18030", text.encode("gb18030")), ("UTF-8 BOM", text.encode("utf-8-sig"))):
                answer = await self._push(data, "text/csv")
                if any(r["status"] not in ("accepted", "duplicate") for r in answer["results"]):
                    raise _fail(f"CSV in {encoding} not read")
                done.append(f"CSV in {encoding}")
        return ", ".join(done)

    async def delivery_reaches(self) -> str:
        """Records can reach the connector: its inbox answers (pull), its endpoint takes a signed empty
        push in its format (push), or its watched folder is there (file drop)."""
        connector = self.connector
        if connector.watch_dir and not connector.consumes:
            folder = self.config.base_dir / connector.watch_dir
            if not folder.is_dir():
                raise _fail(f"watch_dir {folder} does not exist (on this machine)")
            return f"watch_dir {folder} exists"
        if not connector.consumes:
            raise _skip("连接器不接收记录 / the connector consumes nothing")
        if connector.delivery == "pull":
            answer, _ = await self._call("GET", "/v1/inbox?limit=1")
            if answer.status != 200 or not isinstance(answer.body, dict) or "next" not in answer.body:
                raise _fail(f"the inbox answered {answer.message()}")
            return "GET /v1/inbox 200 (nothing acknowledged)"
        status = await self._post_endpoint(self.secret)
        if not 200 <= status < 300:
            raise _fail(f"{connector.endpoint} answered {status} to a signed empty push")
        return f"{connector.endpoint} answered {status} to a signed empty push"

    async def endpoint_verifies(self) -> str:
        """The connector's endpoint refuses a push with a wrong signature."""
        if self.connector.delivery != "push":
            raise _skip("连接器不接收推送 / nothing is pushed to this connector (it pulls, or consumes nothing)")
        status = await self._post_endpoint(self.secret + "-wrong")
        if status not in (401, 403):
            raise _fail(f"{self.connector.endpoint} answered {status} to a wrongly signed push: it must check "
                        "X-Supex-Signature and answer 401")
        return f"{status}"

    async def _post_endpoint(self, secret: str) -> int:
        assert self._session is not None
        assert self.connector.endpoint is not None
        mapping = self.mapping if self.mapping is not None and self.mapping.reversible else None
        out = io.BytesIO()
        if mapping is not None:
            write_rows(mapping, [], out)
        body = out.getvalue() or b"[]"
        content_type = WRITTEN_AS[mapping.format] if mapping is not None else WRITTEN_AS["json"]
        url = URL(self.connector.endpoint)
        try:
            answer = await send(self._session, "POST", url, body, key=self.connector.id, secret=secret,
                                content_type=content_type, timeout=10, clock=self._clock)
        except UnreachableError as exc:
            raise _fail(f"{url} unreachable: {exc}") from exc
        return answer.status


def _touch(record: dict[str, Any], text: str = "changed") -> None:
    """Change the record's content in a free-text field it is sure to have."""
    data = record["data"]
    for field in ("description", "action_name", "illegal_facts", "penalty_content", "name", "title"):
        if isinstance(data.get(field), str):
            data[field] = f"{data[field]} ({text})"[:200]
            return
    subject = data.get("subject")
    if not (isinstance(subject, dict) and isinstance(subject.get("name"), str)):
        raise _not_run("记录没有可改动的文字字段 / the record has no free-text field to change")
    subject["name"] = f"{subject['name']}（{text}）"


def _with_record_id(mapping: CompiledMapping, source: Any, record_id: str) -> Any:
    """An example's source with its record id set to ``record_id`` where the mapping reads the id
    with a plain ``from`` (a key, a column, a child element); ``None`` where it cannot be set."""
    rule = mapping.definition.fields.get("record_id")
    path = rule if isinstance(rule, str) else getattr(rule, "from_", None)
    if not isinstance(path, str):
        return None
    if mapping.format == "xml":
        element = parse_xml(str(source).encode())
        found = element.find(mapping.clark(path)) if re.fullmatch(r"(\w+:)?[\w.-]+", path) else None
        if found is None:
            return None
        found.text = record_id
        changed: Any = etree.tostring(element, encoding="unicode")
    elif isinstance(source, dict):
        changed = copy.deepcopy(source)
        *parents, last = path.split(".") if mapping.format == "json" else [path]
        target = changed
        for key in parents:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return None
        target[last] = record_id
    else:
        return None
    mapped, _ = mapping.to_standard(parse_xml(changed.encode()) if mapping.format == "xml" else changed)
    return changed if mapped.get("record_id") == record_id else None


def _source_body(mapping: CompiledMapping, sources: list[Any]) -> bytes:
    """Example sources as one body in the mapping's format."""
    if mapping.format == "json":
        return orjson.dumps(sources)
    if mapping.format == "xml":
        out = io.BytesIO()
        write_rows(mapping, [parse_xml(str(source).encode()) for source in sources], out)
        return out.getvalue()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(sources[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: str(v) for k, v in source.items()} for source in sources)
    return text.getvalue().encode("utf-8")


def suite_for(config_path: Path | str, connector_id: str, url: str | None) -> ConnectorSuite:
    """The suite for a connector of a configuration file (its secret from the secrets file or environment)."""
    config = load_config(config_path, secrets_of=[connector_id])
    if connector_id not in config.connectors():
        raise ConfigError(f"配置中没有连接器 / no connector {connector_id!r} in {config_path} "
                          f"(known: {', '.join(config.connectors())})")
    return ConnectorSuite(config, connector_id, url or f"http://{config.gateway.listen}")


def run_suite(suite: ConnectorSuite, on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run a suite to the end from synchronous code."""
    return asyncio.run(suite.run(on_result))

