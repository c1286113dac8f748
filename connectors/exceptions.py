"""Errors of the connector family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, InputError, RetriableError

__all__ = ["GatewayBusyError", "GatewayRefusedError", "GatewayUnreachableError", "UnknownKindError",
           "UnreachableError"]


class UnreachableError(RetriableError):
    """No answer from the other side of a request (connection refused, reset, timed out)."""


class GatewayRefusedError(InputError):
    """The gateway refused the request for good (400, 401, 403, 404, 413, 415): fix it, do not retry."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class GatewayBusyError(RetriableError):
    """The gateway asked to come back later (429, 503), after ``retry_after`` seconds."""

    def __init__(self, status: int, message: str, retry_after: float | None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.retry_after = status, retry_after


class GatewayUnreachableError(UnreachableError):
    """No answer from the gateway (connection refused, reset, timed out)."""


class UnknownKindError(ConfigurationError):
    """A configuration names a connector kind that no module of ``connectors.kinds`` defines."""
