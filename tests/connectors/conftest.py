"""The gateway fixtures, shared with the connector tests."""

from tests.gateway.conftest import config

__all__ = ["config"]
