"""One signed HTTP request, and one rule for what its answer means.

Every call supex makes to another system goes through ``send``: a connector's client calling the
gateway, the gateway polling a system, pushing to a consumer, or testing a connector. It signs the
request, never follows a redirect (a signature is not sent elsewhere), reads the whole
answer, and turns a failure to get one into ``UnreachableError``. ``classify`` is the one retry
rule: 2xx is ``ok``; 408, 429, 500, 502, 503 and 504 are worth trying again (``retry``); any other
answer is ``fatal`` — the same request would be refused again. ``retrying`` is the one way to
retry within a call, honouring a ``Retry-After`` the other side gave.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import aiohttp
from multidict import CIMultiDictProxy
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base
from yarl import URL

from connectors.exceptions import UnreachableError
from connectors.signing import signature_headers
from schemas.exceptions import RetriableError

__all__ = ["RETRIED", "Answer", "Sleep", "classify", "retry_after", "retrying", "send"]

Sleep = Callable[[float], Awaitable[None]]
RETRIED = frozenset({408, 429, 500, 502, 503, 504})  # answers that may differ if the same request is sent again
_LONGEST_WAIT = 60.0  # a Retry-After above this is waited for only this long within one call


class Answer(NamedTuple):
    """What the other side answered."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    links: Any  # the ``Link`` header's relations (aiohttp's ``links``)

    @property
    def content_type(self) -> str:
        """The answer's media type, lower case, without parameters."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def classify(status: int) -> str:
    """``ok`` (2xx), ``retry`` (408, 429, 500, 502, 503, 504) or ``fatal`` (any other answer, a
    redirect too)."""
    if 200 <= status < 300:
        return "ok"
    return "retry" if status in RETRIED else "fatal"


def retry_after(answer: Answer) -> float | None:
    """The seconds a ``Retry-After`` header asks for (``None``: none, or an HTTP date)."""
    value = answer.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


async def send(session: aiohttp.ClientSession, method: str, url: str | URL, body: bytes = b"", *, key: str,
               secret: str, content_type: str | None = None, algorithm: str = "hmac-sha256",
               timeout: float | None = None, clock: Callable[[], float] = time.time,
               headers: dict[str, str] | None = None, extra_headers: Mapping[str, str] | None = None) -> Answer:
    """Send one request signed as connector ``key`` with ``secret`` (or with ``headers`` as given,
    to test a gateway with a forged one), with ``extra_headers`` besides, and read the whole
    answer; ``UnreachableError`` when none comes (refused, reset, timed out)."""
    target = URL(url)
    sent = headers if headers is not None else signature_headers(key, secret, method, target.raw_path_qs, body,
                                                                 algorithm=algorithm, now=clock)
    if content_type is not None:
        sent = {**sent, "Content-Type": content_type}
    if extra_headers:
        sent = {**sent, **extra_headers}
    limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else session.timeout
    try:
        async with session.request(method, target, data=body or None, headers=sent, allow_redirects=False,
                                   timeout=limit) as answer:
            return Answer(answer.status, answer.headers, await answer.read(), answer.links)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise UnreachableError(f"无法连接 {target.with_query(None)} / no answer from {target.with_query(None)}: "
                               f"{type(exc).__name__} {exc}".strip()) from exc


class _RetryAfter(wait_base):
    """Wait what the other side asked for (an error's ``retry_after``); otherwise back off."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: Any) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        asked = getattr(error, "retry_after", None)
        if isinstance(asked, int | float):
            return float(min(asked, _LONGEST_WAIT))
        return float(self.fallback(retry_state))


def retrying(attempts: int, *, sleep: Sleep = asyncio.sleep, initial: float = 0.5, longest: float = 30.0,
             on: type[BaseException] | tuple[type[BaseException], ...] = RetriableError) -> AsyncRetrying:
    """Up to ``attempts`` tries of a call while it raises ``on`` (by default any retriable error),
    waiting what a ``Retry-After`` asked for or else exponentially longer with jitter; the last
    error is raised as it is."""
    return AsyncRetrying(stop=stop_after_attempt(attempts), sleep=sleep, reraise=True,
                         wait=_RetryAfter(wait_exponential_jitter(multiplier=initial, max=longest)),
                         retry=retry_if_exception_type(on))
