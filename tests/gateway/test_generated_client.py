"""A client generated from the OpenAPI document by a real generator (openapi-python-client) calls
the running gateway: the document is not only valid but usable as it stands."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.config import Config
from gateway.http.app import all_routes, create_app
from gateway.http.openapi import openapi_document
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, NOW

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "supex_supervision_data_exchange_gateway_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated client package, imported."""
    folder = tmp_path_factory.mktemp("client")
    document = folder / "openapi.json"
    document.write_text(json.dumps(openapi_document(all_routes()), ensure_ascii=False), encoding="utf-8")
    done = subprocess.run([str(GENERATOR), "generate", "--path", str(document), "--meta", "none",
                           "--output-path", str(folder / PACKAGE)], capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]


async def test_the_generated_client_calls_the_gateway(generated: Any, config: Config,
                                                      aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    server = await aiohttp_server(create_app(config, clock=lambda: NOW, deliver=False))
    base = str(server.make_url("")).rstrip("/")
    api = importlib.import_module(f"{PACKAGE}.api.default")
    client = importlib.import_module(PACKAGE)
    healthz = importlib.import_module(f"{PACKAGE}.api.default.healthz")
    schemas = importlib.import_module(f"{PACKAGE}.api.default.schemas")
    events = importlib.import_module(f"{PACKAGE}.api.default.audit_events")
    connectors = importlib.import_module(f"{PACKAGE}.api.default.admin_connectors")
    assert api is not None
    anyone = client.Client(base_url=base)
    assert (await healthz.asyncio_detailed(client=anyone)).status_code == 200
    admin = client.AuthenticatedClient(base_url=base, token=ADMIN_TOKEN)
    listed = await schemas.asyncio(client=admin)
    assert listed.version and len(listed.types) == 15
    auditor = client.AuthenticatedClient(base_url=base, token=AUDITOR_TOKEN)
    page = await events.asyncio(client=auditor, limit=5, after=0)  # integers, as the document types them
    assert page is not None and page.next_ is not None
    refused = await events.asyncio_detailed(client=auditor, limit=5000)
    assert refused.status_code == 400  # its bound, as the document states it
    registered = await connectors.asyncio(client=admin)
    assert {c["id"] if isinstance(c, dict) else c.additional_properties["id"] for c in registered.connectors} >= {
        "amr", "jinan"}
