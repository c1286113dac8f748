"""Errors of the gateway family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, FatalError, RetriableError

__all__ = ["ConfigError", "LogIntegrityError", "StoreUnavailableError"]


class ConfigError(ConfigurationError):
    """The gateway's configuration is wrong: an unknown key, a missing secret, a bad value."""


class StoreUnavailableError(RetriableError):
    """The store cannot commit now (locked, full, unreachable); the request may be retried."""


class LogIntegrityError(FatalError):
    """The exchange log's hash chain is broken."""
