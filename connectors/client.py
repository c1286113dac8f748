"""``SupexClient``: a connector's signed client of the gateway, with retries that honour Retry-After.

Requests go through ``connectors.transport``: its ``classify`` decides whether an answer is
success, retriable or final, and its ``retrying`` retries, with the sleep injected so that tests
assert the delays.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from connectors.exceptions import GatewayBusyError, GatewayRefusedError, GatewayUnreachableError, UnreachableError
from connectors.transport import Sleep, classify, retry_after, retrying, send

__all__ = ["SupexClient", "classify"]


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
        try:
            answer = await send(self._http(), method, self.url + path, body, key=self.connector, secret=self._secret,
                                content_type=content_type, algorithm=self.algorithm, clock=self._clock)
        except UnreachableError as exc:
            raise GatewayUnreachableError(f"网关无法连接 / cannot reach the gateway at {self.url}: {exc}") from exc
        verdict = classify(answer.status)
        if verdict == "ok":
            return orjson.loads(answer.body) if answer.body else None
        code, message = _message(answer.body)
        if verdict == "retry":
            raise GatewayBusyError(answer.status, message, retry_after(answer))
        raise GatewayRefusedError(answer.status, code, message)

    async def request(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> Any:
        """One signed request, retried on 408, 429, 5xx answers that may pass and connection errors;
        the JSON answer."""
        async for attempt in retrying(self.attempts, sleep=self._sleep):
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

    async def receipt(self, record_id: str, *, version: int | None = None, as_consumer: bool = False) -> dict[str, Any]:
        """The connector's receipt (回执) of a record: the log entry that stored it (or, as its
        consumer, that shared it with this connector), its inclusion proof and a signed checkpoint,
        to keep and check offline (``supex log check-receipt``)."""
        query = [f"version={version}"] if version is not None else []
        if as_consumer:
            query.append("as=consumer")
        path = f"/v1/records/{quote(record_id, safe='')}/receipt" + ("?" + "&".join(query) if query else "")
        answer: dict[str, Any] = await self.request("GET", path)
        return answer
