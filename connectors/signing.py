"""Request signatures (HMAC over method, path, time, nonce and body hash), shared by the client and the gateway.

``hex(HMAC(secret, METHOD \\n PATH_AND_QUERY \\n TIMESTAMP \\n NONCE \\n hex(H(body))))`` with
H = SHA-256 (default) or SM3 (``X-Supex-Algorithm: hmac-sm3``), both from ``cryptography``.
"""

from __future__ import annotations

import hmac as std_hmac
import secrets
import time
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

__all__ = [
    "ALGORITHMS",
    "HEADER_ALGORITHM",
    "HEADER_KEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "body_digest",
    "sign",
    "signature_headers",
    "signature_problem",
    "signatures_match",
]

HEADER_KEY = "X-Supex-Key"
HEADER_TIMESTAMP = "X-Supex-Timestamp"
HEADER_NONCE = "X-Supex-Nonce"
HEADER_SIGNATURE = "X-Supex-Signature"
HEADER_ALGORITHM = "X-Supex-Algorithm"
ALGORITHMS: dict[str, Callable[[], hashes.HashAlgorithm]] = {"hmac-sha256": hashes.SHA256, "hmac-sm3": hashes.SM3}


def body_digest(body: bytes, algorithm: str = "hmac-sha256") -> str:
    """Hex digest of the body with the algorithm's hash."""
    digest = hashes.Hash(ALGORITHMS[algorithm]())
    digest.update(body)
    return digest.finalize().hex()


def sign(  # noqa: PLR0917 - the six parts of the signature recipe, in its order
    secret: str, method: str, path_and_query: str, timestamp: str, nonce: str, body: bytes, *,
    algorithm: str = "hmac-sha256",
) -> str:
    """The hex signature of one request."""
    message = "\n".join((method.upper(), path_and_query, timestamp, nonce, body_digest(body, algorithm)))
    mac = crypto_hmac.HMAC(secret.encode(), ALGORITHMS[algorithm]())
    mac.update(message.encode())
    return mac.finalize().hex()


def signatures_match(expected: str, given: str) -> bool:
    """Compare two signatures in constant time."""
    return std_hmac.compare_digest(expected.encode(), given.lower().encode())


def signature_headers(key: str, secret: str, method: str, path_and_query: str, body: bytes, *,
                      algorithm: str = "hmac-sha256", now: Callable[[], float] = time.time) -> dict[str, str]:
    """The four (or five) headers that sign a request as connector ``key``."""
    timestamp, nonce = str(int(now())), secrets.token_hex(16)
    headers = {
        HEADER_KEY: key,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(secret, method, path_and_query, timestamp, nonce, body, algorithm=algorithm),
    }
    if algorithm != "hmac-sha256":
        headers[HEADER_ALGORITHM] = algorithm
    return headers


def signature_problem(headers: Mapping[str, str], method: str, path_and_query: str, body: bytes, *, key: str,
                      secret: str, now: float, skew: int = 300) -> str | None:
    """Why a request is not signed as ``key`` with ``secret`` (``None``: it is). For receivers of
    the gateway's pushes and polls; the nonce's uniqueness is the receiver's to track."""
    if headers.get(HEADER_KEY) != key:
        return f"key {headers.get(HEADER_KEY)!r} is not {key!r}"
    algorithm = headers.get(HEADER_ALGORITHM, "hmac-sha256").lower()
    if algorithm not in ALGORITHMS:
        return f"unsupported algorithm {algorithm!r}"
    timestamp, nonce = headers.get(HEADER_TIMESTAMP, ""), headers.get(HEADER_NONCE, "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > skew:
        return f"timestamp missing or more than {skew} s off"
    if len(nonce) < 16:
        return "nonce shorter than 16 characters"
    expected = sign(secret, method, path_and_query, timestamp, nonce, body, algorithm=algorithm)
    if not signatures_match(expected, headers.get(HEADER_SIGNATURE, "")):
        return "wrong signature"
    return None
