"""SupexClient: signs, classifies answers, retries what may succeed later with Retry-After honoured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors import GatewayRefusedError, GatewayUnreachableError, SupexClient, classify
from connectors.signing import sign
from gateway.config import Config
from gateway.http.app import create_app
from tests.gateway.conftest import NOW, SECRETS, inspection


@pytest.mark.parametrize(("status", "verdict"), [(200, "ok"), (204, "ok"), (429, "retry"), (503, "retry"),
                                                 (502, "retry"), (400, "fatal"), (401, "fatal"), (413, "fatal")])
def test_classify(status: int, verdict: str) -> None:
    """Which answers are worth retrying."""
    assert classify(status) == verdict


def test_the_signature_of_a_known_request() -> None:
    """A fixed request has a fixed signature (the signature recipe)."""
    assert sign("k" * 16, "post", "/v1/records", "1700000000", "n" * 16, b"[]") == sign(
        "k" * 16, "POST", "/v1/records", "1700000000", "n" * 16, b"[]")
    assert sign("k" * 16, "POST", "/v1/records", "1700000000", "n" * 16, b"[]") != sign(
        "k" * 16, "POST", "/v1/records", "1700000001", "n" * 16, b"[]")


Server = Callable[..., Awaitable[TestServer]]


async def test_the_client_pushes_and_pulls(config: Config, aiohttp_server: Server) -> None:
    """Against a real gateway: push, pull, ack."""
    server = await aiohttp_server(create_app(config, clock=lambda: NOW))
    url = str(server.make_url(""))
    async with SupexClient(url, "amr", SECRETS["amr"], clock=lambda: NOW) as producer:
        answer = await producer.push([inspection(1)])
    assert answer["accepted"] == 1
    async with SupexClient(url, "jinan", SECRETS["jinan"], clock=lambda: NOW) as consumer:
        page = await consumer.inbox()
        assert [r["record_id"] for r in page["records"]] == ["in-1"]
        await consumer.ack(page["next"])
        assert (await consumer.inbox())["records"] == []
    async with SupexClient(url, "amr", "wrong-secret-0123456789", clock=lambda: NOW) as impostor:
        with pytest.raises(GatewayRefusedError) as refused:
            await impostor.push([inspection(2)])
    assert refused.value.status == 401


async def test_busy_answers_are_retried_after_what_they_ask(aiohttp_server: Server) -> None:
    """503 with Retry-After: 2, then 429 without, then success: the sleeps are 2 s and a backoff."""
    answers = [web.json_response({"error": {"code": "busy", "message": "x"}}, status=503, headers={"Retry-After": "2"}),
               web.json_response({"error": {"code": "rate", "message": "x"}}, status=429),
               web.json_response({"accepted": 1})]
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.headers["X-Supex-Nonce"])
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/v1/records", handler)
    server = await aiohttp_server(app)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with SupexClient(str(server.make_url("")), "amr", SECRETS["amr"], sleep=sleep) as client:
        answer: dict[str, Any] = await client.push([inspection(1)])
    assert answer == {"accepted": 1}
    assert slept[0] == 2.0 and 0 < slept[1] <= 2.0
    assert len(set(calls)) == 3  # each attempt signed afresh


async def test_an_unreachable_gateway_gives_up_after_the_attempts() -> None:
    """Connection errors are retried, then raised as GatewayUnreachableError."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with SupexClient("http://127.0.0.1:9", "amr", SECRETS["amr"], sleep=sleep, attempts=3) as client:
        with pytest.raises(GatewayUnreachableError):
            await client.push([inspection(1)])
    assert len(slept) == 2
