"""``SupexClient``: a connector's signed client of the gateway, with retries that honour Retry-After.

``classify`` decides, purely from a status and a body, whether an answer is success, retriable
or final; tenacity does the retrying, with the sleep injected so that tests assert the delays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import orjson
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from connectors.exceptions import GatewayBusyError, GatewayRefusedError, GatewayUnreachableError
from connectors.signing import signature_headers

__all__ = ["SupexClient", "classify"]

Sleep = Callable[[float], Awaitable[None]]


def classify(status: int) -> str:
    """``ok`` (2xx), ``retry`` (429, 502, 503, 504) or ``fatal`` (any other answer)."""
    if 200 <= status < 300:
        return "ok"
    if status in (429, 502, 503, 504):
        return "retry"
    return "fatal"


class _RetryAfter(wait_base):
    """Wait what the gateway asked for; otherwise exponential backoff with jitter."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: Any) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, GatewayBusyError) and error.retry_after is not None:
            return float(min(error.retry_after, 60.0))
        return float(self.fallback(retry_state))


def _message(body: bytes) -> tuple[str, str]:
    try:
        error = orjson.loads(body)["error"]
        return str(error["code"]), str(error["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "error", body[:200].decode("utf-8", errors="replace")


class SupexClient:
    """Signs requests as one connector and retries what may succeed later."""

    def __init__(self, url: str, connector: str, secret: str, *, algorithm: str = "hmac-sha256",
                 attempts: int = 6, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.time,
                 timeout: float = 60.0, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self.connector, self._secret, self.algorithm = connector, secret, algorithm
        self.attempts, self._sleep, self._clock = attempts, sleep, clock
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session, self._own_session = session, session is None

    async def __aenter__(self) -> SupexClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session the client opened."""
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _once(self, method: str, path: str, body: bytes, content_type: str) -> Any:
        headers = signature_headers(self.connector, self._secret, method, path, body, algorithm=self.algorithm,
                                    now=self._clock)
        headers["Content-Type"] = content_type
        try:
            async with self._http().request(method, self.url + path, data=body or None, headers=headers) as answer:
                data = await answer.read()
                verdict = classify(answer.status)
                if verdict == "ok":
                    return orjson.loads(data) if data else None
                code, message = _message(data)
                if verdict == "retry":
                    retry_after = answer.headers.get("Retry-After", "")
                    wait = float(retry_after) if retry_after.isdigit() else None
                    raise GatewayBusyError(answer.status, message, wait)
                raise GatewayRefusedError(answer.status, code, message)
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise GatewayUnreachableError(f"网关无法连接 / cannot reach the gateway at {self.url}: {exc}") from exc

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> Any:
        """One signed request, retried on 429, 503 and connection errors; the JSON answer."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=_RetryAfter(wait_exponential_jitter(multiplier=0.5, max=30)),
            retry=retry_if_exception_type((GatewayBusyError, GatewayUnreachableError)),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, path, body, content_type)
        raise AssertionError("unreachable")  # pragma: no cover

    async def push(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Push standard records as one batch; the gateway's per-record answer."""
        answer: dict[str, Any] = await self.request("POST", "/v1/records", orjson.dumps(records))
        return answer

    async def push_body(self, body: bytes, content_type: str) -> dict[str, Any]:
        """Push a body in the connector's own format (XML, CSV, JSON rows)."""
        answer: dict[str, Any] = await self.request("POST", "/v1/records", body, content_type)
        return answer

    async def push_all(self, records: Iterable[dict[str, Any]], batch_size: int = 500) -> AsyncIterator[
        dict[str, Any]
    ]:
        """Push records in batches, yielding each batch's answer."""
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                yield await self.push(batch)
                batch = []
        if batch:
            yield await self.push(batch)

    async def inbox(self, after: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of the connector's inbox."""
        query = f"/v1/inbox?limit={limit}" + (f"&after={after}" if after else "")
        answer: dict[str, Any] = await self.request("GET", query)
        return answer

    async def ack(self, cursor: str) -> dict[str, Any]:
        """Acknowledge everything up to ``cursor``."""
        answer: dict[str, Any] = await self.request("POST", "/v1/inbox/ack", orjson.dumps({"cursor": cursor}))
        return answer
