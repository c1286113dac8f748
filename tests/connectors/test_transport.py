"""The one signed request of supex and the one rule for what its answer means."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.exceptions import UnreachableError
from connectors.signing import signature_problem
from connectors.transport import classify, retrying, send
from schemas.exceptions import RetriableError

Server = Callable[..., Awaitable[TestServer]]
NOW = 1_764_000_000.0


@pytest.mark.parametrize(("status", "verdict"), [
    (200, "ok"), (201, "ok"), (204, "ok"), (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"),
    (503, "retry"), (504, "retry"), (301, "fatal"), (302, "fatal"), (400, "fatal"), (401, "fatal"), (404, "fatal"),
    (413, "fatal"), (501, "fatal")])
def test_one_rule_for_every_answer(status: int, verdict: str) -> None:
    """What the client, the poller and the deliverer all go by."""
    assert classify(status) == verdict


async def test_a_request_is_signed_and_a_redirect_is_not_followed(aiohttp_server: Server) -> None:
    seen: list[str | None] = []

    async def moved(request: web.Request) -> web.Response:
        seen.append(signature_problem(request.headers, request.method, request.raw_path, await request.read(),
                                      key="amr", secret="s" * 20, now=NOW))
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(_request: web.Request) -> web.Response:  # pragma: no cover - must not be reached
        seen.append("followed")
        return web.Response()

    app = web.Application()
    app.router.add_post("/in", moved)
    app.router.add_get("/elsewhere", elsewhere)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        answer = await send(session, "POST", server.make_url("/in?x=1"), b"[]", key="amr", secret="s" * 20,
                            content_type="application/json", clock=lambda: NOW)
    assert answer.status == 302 and classify(answer.status) == "fatal"
    assert seen == [None]  # signed over its path and query, and not sent on


async def test_no_answer_is_an_unreachable_error_with_its_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UnreachableError) as raised:
            await send(session, "GET", f"http://127.0.0.1:{port}/x", key="amr", secret="s" * 20, timeout=5)
    assert isinstance(raised.value, RetriableError) and raised.value.__cause__ is not None


class _BusyError(RetriableError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("busy")
        self.retry_after = retry_after


async def test_retrying_waits_what_was_asked_or_backs_off() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    errors = [_BusyError(7), _BusyError(None), _BusyError(600)]

    async def call() -> None:
        async for attempt in retrying(4, sleep=sleep):
            with attempt:
                raise errors.pop(0) if errors else _BusyError(None)

    with pytest.raises(_BusyError):
        await call()
    assert slept[0] == 7 and 0 < slept[1] <= 2.0 and slept[2] == 60.0  # a long Retry-After is capped
    assert len(slept) == 3  # four attempts, three waits


async def test_retrying_leaves_a_final_error_alone() -> None:
    attempts = []

    async def call() -> None:
        async for attempt in retrying(5):
            with attempt:
                attempts.append(1)
                raise ValueError("final")

    with pytest.raises(ValueError, match="final"):
        await call()
    assert len(attempts) == 1
