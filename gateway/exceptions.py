"""Errors of the gateway family; see ``schemas.exceptions`` for the whole tree.

A request the gateway refuses raises a ``Refusal``: its ``status`` and ``code`` are the HTTP answer
(``{"error": {"code", "message"}}``), written in one place, the ``observe`` middleware.
"""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, FatalError, InputError, Refusal, RetriableError

__all__ = ["AuthError", "BodyError", "ConfigError", "DataKeyError", "DeliveryFailedError", "LogIntegrityError",
           "NotFoundError", "ParameterError", "ReadLimitError", "Refusal", "ReplayError", "SourceError",
           "SourceUnavailableError", "StoreInUseError", "StoreUnavailableError"]


class ConfigError(ConfigurationError):
    """The gateway's configuration is wrong: an unknown key, a missing secret, a bad value."""


class StoreInUseError(ConfigurationError):
    """A SQLite store already served by another gateway (one gateway a file; several share PostgreSQL)."""


class StoreUnavailableError(RetriableError):
    """The store cannot commit now (locked, full, unreachable); the request may be retried (503)."""


class LogIntegrityError(FatalError):
    """The exchange log's hash chain is broken."""


class DataKeyError(FatalError):
    """A sealed payload cannot be opened: its key is not in the key ring, or it was altered."""


class SourceError(InputError):
    """What a polled system answered, or a dropped file holds, cannot be taken (the reason says why)."""


class SourceUnavailableError(RetriableError):
    """A polled system did not answer usefully now (timeout, refused connection, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryFailedError(RetriableError):
    """A consumer did not take a push. ``final``: its answer would be the same next time (a redirect,
    a refusal), so the delivery is not tried again until an admin replays it."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class BodyError(Refusal):
    """The request body as a whole cannot be taken (nothing is stored)."""

    def __reduce__(self) -> tuple[type[BodyError], tuple[int, str, str]]:
        return BodyError, (self.status, self.code, self.message)  # raised in a worker process, re-raised here


class AuthError(Refusal):
    """A request's credentials are missing or wrong (401), of the wrong role (403), or tried too
    often (429, ``retry_after`` seconds); the connection is closed after the answer."""


class ParameterError(Refusal):
    """A query parameter that is not what its endpoint takes (400 ``bad_parameter``)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "bad_parameter", message)


class NotFoundError(Refusal):
    """An item the request names is not there, or not the caller's to see (404: the same answer
    either way, so that nobody learns of another party's items)."""

    def __init__(self, what: str, *, said: tuple[str, str] | None = None) -> None:
        """``what``: the id the request named; or ``said``, what is missing in Chinese and in English."""
        super().__init__(404, "not_found", f"没有{said[0]} / no {said[1]}" if said else
                         f"没有 {what} / no {what!r} of yours")
        self.what = what

    @classmethod
    def of_entry(cls, seq: int) -> NotFoundError:
        """An exchange-log entry not there (or not the caller's to see)."""
        return cls(f"entry {seq}", said=(f"第 {seq} 条日志条目", f"log entry {seq}"))

    @classmethod
    def of_checkpoint(cls, size: int) -> NotFoundError:
        """No checkpoint signed at ``size`` (``0``: none at all, the log being empty)."""
        return cls(str(size), said=(f"大小为 {size} 的检查点", f"checkpoint of size {size}") if size
                   else ("检查点：日志为空", "checkpoint: the log is empty"))


class ArchivedError(Refusal):
    """An exchange-log entry archived and pruned from the store (410): a bundle of the log's
    archive holds it, with what checks it."""

    def __init__(self, seq: int, through: int) -> None:
        super().__init__(410, "archived", f"第 {seq} 条已归档并从存储中删除 / entry {seq} was archived and pruned "
                         f"from the store (entries 1-{through}): the log's archive holds it in a bundle")


class ReplayError(AuthError):
    """A signed request's nonce was used before, at this gateway or another on the same store (401)."""

    def __init__(self, message: str = "随机数已使用（重放）/ nonce already used (replay)") -> None:
        super().__init__(401, "unauthorized", message)


class ReadLimitError(Refusal):
    """A consumer has read its inbox as often today as its sharing agreement allows (429)."""

    def __init__(self, per_day: int, retry_after: int) -> None:
        super().__init__(429, "read_limit", f"今日读取次数已达上限 {per_day} / the agreement allows {per_day} inbox "
                         f"reads a day; retry after {retry_after} s", retry_after=retry_after)
        self.per_day = per_day
