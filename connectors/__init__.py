"""Connections to the external systems: the signed gateway client and request signatures."""

from connectors.client import SupexClient, classify
from connectors.exceptions import GatewayBusyError, GatewayRefusedError, GatewayUnreachableError
from connectors.signing import sign, signature_headers

__all__ = [
    "GatewayBusyError",
    "GatewayRefusedError",
    "GatewayUnreachableError",
    "SupexClient",
    "classify",
    "sign",
    "signature_headers",
]
