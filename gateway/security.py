"""Who is calling: signed connectors (SPEC §3.1), auditors and administrators by bearer token.

The three roles are kept apart (GB/T 39477): a credential is one role's, and a route names the
roles it admits.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connectors.signing import (
    ALGORITHMS,
    HEADER_ALGORITHM,
    HEADER_KEY,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    sign,
    signatures_match,
)
from gateway.config import Config, ConnectorConfig

__all__ = ["AuthError", "Identity", "NonceCache", "RateLimiter", "TokenBook", "verify_connector"]


class AuthError(Exception):
    """A request's credentials are missing or wrong (401) or of the wrong role (403)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: its role and its name (the connector id for connectors)."""

    role: str  # connector | auditor | admin
    name: str
    connector: ConnectorConfig | None = None


class NonceCache:
    """Nonces seen within the time window; a nonce seen again in the window is a replay."""

    def __init__(self, window: int, clock: Callable[[], float] = time.time, limit: int = 1_000_000) -> None:
        self.window, self._clock, self._limit = window, clock, limit
        self._seen: dict[tuple[str, str], float] = {}

    def first_use(self, key: str, nonce: str) -> bool:
        """Record the nonce; False if it was already used within the window."""
        now = self._clock()
        if len(self._seen) >= self._limit or len(self._seen) % 4096 == 0:
            self._seen = {k: t for k, t in self._seen.items() if t > now - 2 * self.window}
        if (key, nonce) in self._seen:
            return False
        self._seen[(key, nonce)] = now
        return True


class RateLimiter:
    """Token buckets per connector: ``rate`` requests a second, bursts of up to one second's worth."""

    def __init__(self, rates: Mapping[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        self._rates, self._clock = dict(rates), clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def wait_needed(self, key: str) -> float:
        """0 if ``key`` may make a request now (and count it), else the seconds until it may."""
        rate = self._rates.get(key)
        if rate is None:
            return 0.0
        now = self._clock()
        tokens, last = self._buckets.get(key, (max(rate, 1.0), now))
        tokens = min(max(rate, 1.0), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0


class TokenBook:
    """Bearer tokens of auditors and administrators, configured as SHA-256 hashes."""

    def __init__(self, config: Config) -> None:
        self._tokens = [(a.token_sha256.lower(), "auditor", a.name) for a in config.auditor]
        self._tokens += [(a.token_sha256.lower(), "admin", a.name) for a in config.admin]

    def identify(self, token: str) -> Identity | None:
        """The auditor or administrator holding ``token``, compared in constant time."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for expected, role, name in self._tokens:
            if hmac.compare_digest(expected, digest):
                found = Identity(role, name)
        return found


def _unauthorised(message: str) -> AuthError:
    return AuthError(401, "unauthorized", message)


def verify_connector(headers: Mapping[str, str], method: str, path_and_query: str, body: bytes, *,
                     connectors: Mapping[str, ConnectorConfig], secrets: Mapping[str, str], nonces: NonceCache,
                     skew: int, now: float) -> Identity:
    """Check a connector's signature headers against the body; raises ``AuthError``."""
    key = headers.get(HEADER_KEY, "")
    connector = connectors.get(key)
    if connector is None or not connector.enabled:
        raise _unauthorised("未知或已停用的连接器 / unknown or disabled connector key")
    timestamp, nonce, given = headers.get(HEADER_TIMESTAMP, ""), headers.get(HEADER_NONCE, ""), headers.get(
        HEADER_SIGNATURE, "")
    algorithm = headers.get(HEADER_ALGORITHM, "hmac-sha256").lower()
    if algorithm not in ALGORITHMS:
        raise _unauthorised(f"不支持的签名算法 / unsupported signature algorithm {algorithm!r}")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > skew:
        raise _unauthorised(f"时间戳缺失或偏差超过 {skew} 秒 / timestamp missing or more than {skew} s off")
    if len(nonce) < 16 or len(nonce) > 128:
        raise _unauthorised("随机数应为 16–128 个字符 / the nonce must be 16 to 128 characters")
    expected = sign(secrets[key], method, path_and_query, timestamp, nonce, body, algorithm=algorithm)
    if not given or not signatures_match(expected, given):
        raise _unauthorised("签名错误 / wrong signature")
    if not nonces.first_use(key, nonce):
        raise _unauthorised("随机数已使用（重放）/ nonce already used (replay)")
    return Identity("connector", key, connector)
