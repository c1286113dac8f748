"""Connections to the external systems: the signed gateway client and request signatures.

The client (and aiohttp with it) is imported when first used, so that what needs only the
connector kinds or signatures (the command line's offline commands) does not load it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.exceptions import GatewayBusyError, GatewayRefusedError, GatewayUnreachableError
from connectors.signing import sign, signature_headers

if TYPE_CHECKING:
    from connectors.client import SupexClient, classify


def __getattr__(name: str) -> Any:
    if name in ("SupexClient", "classify"):
        from connectors import client  # noqa: PLC0415 - the lazy import is the point

        return getattr(client, name)
    raise AttributeError(f"module 'connectors' has no attribute {name!r}")

__all__ = [
    "GatewayBusyError",
    "GatewayRefusedError",
    "GatewayUnreachableError",
    "SupexClient",
    "classify",
    "sign",
    "signature_headers",
]
