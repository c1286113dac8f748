"""Who is calling: signed connectors, auditors and administrators by bearer token.

The three roles are kept apart (GB/T 39477): a credential is one role's, and a route names the
roles it admits. Everything a caller can be refused for by its headers alone (``claim_connector``,
a bearer token) is decided before a byte of its body is read; the signature over the body after.
Every header value is read strictly (``header_text``): printable ASCII, bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
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
from gateway.exceptions import AuthError

__all__ = ["BodyBudget", "ConnectorClaim", "FailureThrottle", "Identity", "NonceCache", "RateLimiter",
           "TokenBook", "claim_connector", "client_key", "header_text", "verify_signature"]

_PRINTABLE = re.compile(r"[\x20-\x7e]*")  # ASCII without controls
_NONCE = re.compile(r"[A-Za-z0-9_.~+/=-]{16,128}")


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: its role and its name (the connector id for connectors)."""

    role: str  # connector | auditor | admin
    name: str
    connector: ConnectorConfig | None = None


def _unauthorised(message: str) -> AuthError:
    return AuthError(401, "unauthorized", message)


def header_text(headers: Mapping[str, str], name: str, *, limit: int = 256, default: str = "") -> str:
    """A header's value as the gateway reads every header: printable ASCII of at most ``limit``
    characters (a value that is not is refused with 401, naming the header, never half-read)."""
    value = headers.get(name)
    if value is None:
        return default
    value = value.strip()
    if len(value) > limit or not value.isascii() or not _PRINTABLE.fullmatch(value):
        raise _unauthorised(f"请求头 {name} 应为不超过 {limit} 个可打印 ASCII 字符 / the {name} header must be at most "
                            f"{limit} printable ASCII characters")
    return value


class NonceCache:
    """Nonces this gateway saw within the time window: the front of the store's own record of
    them, refusing a replay to this gateway without a trip to the store."""

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


class FailureThrottle:
    """Failed attempts at a secret (a bearer token, a console sign-in) slowed per address and over
    all addresses together (a token names no account to count them by): past ``per_address``
    failures of one address, or ``overall`` of all, within ``window`` seconds, each further attempt
    waits twice as long as the one before (1 s, 2 s, 4 s … at most ``longest``). A success clears
    its address."""

    def __init__(self, *, per_address: int = 10, overall: int = 100, window: float = 300.0,
                 longest: float = 900.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_address, self._overall = per_address, overall
        self._window, self._longest, self._clock = window, longest, clock
        self._failures: dict[str | None, list[float]] = {}  # by address; None: all of them

    def _allowed(self, key: str | None) -> int:
        return self._overall if key is None else self._per_address

    def _recent(self, key: str | None, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, ()) if t > now - self._window]
        if times:
            self._failures[key] = times
        else:
            self._failures.pop(key, None)
        return times

    def wait(self, address: str) -> int:
        """Seconds before ``address`` may try again (0: now)."""
        now = self._clock()
        longest = 0.0
        for key in (address, None):
            times = self._recent(key, now)
            over = len(times) - self._allowed(key)
            if over >= 0:
                delay = min(self._longest, 2.0 ** min(over, 30))
                longest = max(longest, times[-1] + delay - now)
        return math.ceil(longest) if longest > 0 else 0

    def failed(self, address: str) -> None:
        """Count a failure of ``address``."""
        now = self._clock()
        for key in (address, None):
            times = self._failures.setdefault(key, [])
            times.append(now)
            del times[:-(self._allowed(key) + 32)]  # enough to reach the longest wait; no more is kept
        if len(self._failures) > 100_000:  # forget the quiet ones: memory stays bounded under a spray
            for key in list(self._failures):
                self._recent(key, now)

    def succeeded(self, address: str) -> None:
        """An address that knew the secret is not a guesser."""
        self._failures.pop(address, None)


def client_key(address: str | None) -> str:
    """Whom a connection, a body or a failure is counted against: an IPv4 address, or the /64 of
    an IPv6 one (one host is given a whole /64, and could otherwise count as millions)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class BodyBudget:
    """Bytes of request bodies being read, by client. A body is read before its signature can be
    checked (the signature covers it), so a caller claiming a connector's key with a made-up
    signature could make the gateway hold bodies: a client may have at most ``per_client`` bytes
    of bodies in flight at once, however many connections it opens."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._held: dict[str, int] = {}

    def take(self, client: str, size: int) -> bool:
        """Count ``size`` more bytes against ``client``; False (nothing counted) if over its budget."""
        held = self._held.get(client, 0) + size
        if held > self.per_client:
            return False
        self._held[client] = held
        return True

    def give_back(self, client: str, size: int) -> None:
        """The body is read (or dropped): its bytes no longer count."""
        left = self._held.get(client, 0) - size
        if left > 0:
            self._held[client] = left
        else:
            self._held.pop(client, None)


class TokenBook:
    """Bearer tokens of auditors and administrators, configured as SHA-256 hashes."""

    def __init__(self, config: Config) -> None:
        self._tokens = [(a.token_sha256.lower(), "auditor", a.name) for a in config.auditor]
        self._tokens += [(a.token_sha256.lower(), "admin", a.name) for a in config.admin]

    def identify(self, token: str) -> Identity | None:
        """The auditor or administrator holding ``token``, compared in constant time."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        found = None
        for expected, role, name in self._tokens:
            if hmac.compare_digest(expected, digest):
                found = Identity(role, name)
        return found


@dataclass(frozen=True, slots=True)
class ConnectorClaim:
    """What a connector's headers say, checked as far as headers alone allow: a known connector
    in force, a timestamp within the window, a well-formed nonce and signature."""

    connector: ConnectorConfig
    timestamp: str
    nonce: str
    signature: str
    algorithm: str


def claim_connector(headers: Mapping[str, str], *, connectors: Mapping[str, ConnectorConfig], skew: int,
                    now: float) -> ConnectorClaim:
    """Check a connector's signature headers before its body is read; raises ``AuthError``."""
    key = header_text(headers, HEADER_KEY, limit=40)
    connector = connectors.get(key)
    if connector is None or not connector.enabled:
        raise _unauthorised("未知或已停用的连接器 / unknown or disabled connector key")
    algorithm = header_text(headers, HEADER_ALGORITHM, limit=20, default="hmac-sha256").lower()
    if algorithm not in ALGORITHMS:
        raise _unauthorised(f"不支持的签名算法 / unsupported signature algorithm {algorithm!r}")
    timestamp = header_text(headers, HEADER_TIMESTAMP, limit=12)
    if not (timestamp.isdigit() and abs(now - int(timestamp)) <= skew):
        raise _unauthorised(f"时间戳缺失或偏差超过 {skew} 秒 / timestamp missing, not whole seconds since the "
                            f"epoch, or more than {skew} s off")
    nonce = header_text(headers, HEADER_NONCE, limit=128)
    if not _NONCE.fullmatch(nonce):
        raise _unauthorised("随机数应为 16–128 个字母、数字或 -_.~+/= / the nonce must be 16 to 128 letters, digits or "
                            "-_.~+/=")
    signature = header_text(headers, HEADER_SIGNATURE, limit=128)
    if not signature:
        raise _unauthorised("缺少签名 / the X-Supex-Signature header is missing")
    return ConnectorClaim(connector, timestamp, nonce, signature, algorithm)


def verify_signature(claim: ConnectorClaim, method: str, path_and_query: str, body: bytes, secret: str) -> Identity:
    """Check the claimed signature over the body, once it has been read; raises ``AuthError``."""
    expected = sign(secret, method, path_and_query, claim.timestamp, claim.nonce, body, algorithm=claim.algorithm)
    if not signatures_match(expected, claim.signature):
        raise _unauthorised("签名错误 / wrong signature")
    return Identity("connector", claim.connector.id, claim.connector)
