"""Errors of the gateway family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, FatalError, InputError, RetriableError

__all__ = ["ConfigError", "DataKeyError", "LogIntegrityError", "ReadLimitError", "ReplayError", "SourceError",
           "SourceUnavailableError", "StoreUnavailableError"]


class ConfigError(ConfigurationError):
    """The gateway's configuration is wrong: an unknown key, a missing secret, a bad value."""


class StoreUnavailableError(RetriableError):
    """The store cannot commit now (locked, full, unreachable); the request may be retried."""


class LogIntegrityError(FatalError):
    """The exchange log's hash chain is broken."""


class ReadLimitError(RetriableError):
    """A consumer has read its inbox as often today as its sharing agreement allows."""

    def __init__(self, per_day: int, retry_after: int) -> None:
        super().__init__(f"今日读取次数已达上限 {per_day} / the agreement allows {per_day} inbox reads a day; "
                         f"retry after {retry_after} s")
        self.per_day, self.retry_after = per_day, retry_after


class ReplayError(InputError):
    """A signed request's nonce was used before, at this gateway or another on the same store."""


class SourceError(InputError):
    """What a polled system answered, or a dropped file holds, cannot be taken (the reason says why)."""


class SourceUnavailableError(RetriableError):
    """A polled system did not answer usefully now (timeout, refused connection, 5xx, 429)."""


class DataKeyError(FatalError):
    """A sealed payload cannot be opened: its key is not in the key ring, or it was altered."""
