"""A gateway on a temporary store, a signed test client, and a fixed clock."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.signing import signature_headers
from gateway.config import Config, load_config
from gateway.http.app import create_app
from tests.conftest import VALID_RECORDS

NOW = 1_780_000_000.0  # a fixed 'now' (2026-05-28) for signatures
AUDITOR_TOKEN, ADMIN_TOKEN = "auditor-token-for-tests-0001", "admin-token-for-tests-00001"
SECRETS = {"amr": "secret-amr-0123456789abcdef", "jinan": "secret-jinan-0123456789abcd",
           "qingdao": "secret-qingdao-0123456789ab", "eo": "secret-eo-0123456789abcdefg",
           "dr": "secret-dr-0123456789abcdefg", "ip": "secret-ip-0123456789abcdefg"}
CONFIG_TEXT = f"""
[gateway]
listen = "127.0.0.1:8440"
store = "sqlite:///supex.db"
log_hash = "sm3"
max_body = "256KiB"
max_records = 50
prepare_processes = 0
allow_plaintext_at_rest = true  # test records, on a throwaway store

[[auditor]]
name = "sec"
token_sha256 = "{hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest()}"

[[admin]]
name = "ops"
token_sha256 = "{hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}"

[[connector]]
id = "amr"
name = "省市场监管局"
department_code = "11370000FE1KM2U90Y"
region_code = "370000"
produces = ["inspection", "clue"]

[[connector]]
id = "jinan"
name = "济南市监管平台"
department_code = "11370000AL7LL93D6K"
region_code = "370100"
consumes = ["inspection", "clue"]

[[connector]]
id = "qingdao"
name = "青岛市监管平台"
department_code = "11370000B7HR4HLY1F"
region_code = "370200"
consumes = ["inspection"]

[[connector]]
id = "eo"
name = "行政执法监督系统"
kind = "enforcement_oversight"
department_code = "11370000JUCCNBB658"
region_code = "370000"
produces = ["penalty"]

[[connector]]
id = "dr"
name = "双随机平台"
kind = "double_random"
department_code = "11370000FT2JP7NQ02"
region_code = "370000"
produces = ["inspection"]

[[connector]]
id = "ip"
name = "互联网+监管"
kind = "internet_plus"
department_code = "11370000R3BKC8GB5G"
region_code = "370000"
produces = ["inspection"]
identifiers = "lenient"
"""


def config_in(folder: Path, store: str = "sqlite:///supex.db", extra: str = "") -> Config:
    """The test configuration written in ``folder``, with another ``store`` and more ``[gateway]``
    lines if given, secrets from the environment."""
    text = CONFIG_TEXT.replace('store = "sqlite:///supex.db"', f'store = "{store}"{extra}')
    (folder / "supex.toml").write_text(text, encoding="utf-8")
    return load_config(folder / "supex.toml", environ={f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The test configuration, secrets from the environment."""
    path = tmp_path / "supex.toml"
    path.write_text(CONFIG_TEXT, encoding="utf-8")
    env = {f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()}
    return load_config(path, environ=env)


def inspection(n: int, region: str = "370102", **data: Any) -> dict[str, Any]:
    """A valid inspection record number ``n`` in ``region``."""
    rec = copy.deepcopy(VALID_RECORDS["inspection"])
    rec.update(record_id=f"in-{n}", region_code=region)
    del rec["version"]
    rec["data"].update(data)
    return rec


class Signed:
    """A test client that signs as a connector, or presents a bearer token."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client

    async def call(self, method: str, path: str, body: bytes = b"", *, connector: str | None = None,
                   bearer: str | None = None, content_type: str = "application/json",
                   headers: dict[str, str] | None = None, now: float = NOW) -> tuple[int, Any]:
        h = {"Content-Type": content_type, **(headers or {})}
        if connector:
            h = {**signature_headers(connector, SECRETS[connector], method, path, body, now=lambda: now), **h}
        if bearer:
            h["Authorization"] = f"Bearer {bearer}"
        answer = await self.client.request(method, path, data=body or None, headers=h)
        data = await answer.read()
        try:
            return answer.status, json.loads(data)
        except ValueError:
            return answer.status, data.decode(errors="replace")

    async def push(self, connector: str, records: Any) -> tuple[int, Any]:
        return await self.call("POST", "/v1/records", json.dumps(records, ensure_ascii=False).encode(),
                               connector=connector)

    async def inbox(self, connector: str, after: str | None = None, limit: int = 100) -> tuple[int, Any]:
        path = f"/v1/inbox?limit={limit}" + (f"&after={after}" if after else "")
        return await self.call("GET", path, connector=connector)


@pytest.fixture
async def gw(config: Config, aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> Signed:
    """A running gateway app with a fresh store, its clock fixed at ``NOW``."""
    app = create_app(config, clock=lambda: NOW)
    return Signed(await aiohttp_client(app))


@contextlib.asynccontextmanager
async def endpoints(handlers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> AsyncIterator[
    dict[str, str]
]:
    """A live local HTTP endpoint (POST /in) per handler, by name, with its URL; closed afterwards."""
    servers: list[TestServer] = []
    urls = {}
    try:
        for name, handler in handlers.items():
            app = web.Application()
            app.router.add_post("/in", handler)
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            servers.append(server)
            urls[name] = str(server.make_url("/in"))
        yield urls
    finally:
        for server in servers:
            await server.close()
