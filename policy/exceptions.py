"""Errors of the policy family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, InputError

__all__ = ["CalendarUnknownError", "PolicyDefinitionError", "ProcedureStepError"]


class PolicyDefinitionError(ConfigurationError):
    """A sharing rule is wrong: an unknown consumer, record type, field path or mask."""


class CalendarUnknownError(ConfigurationError):
    """A time limit would be counted over days the working-day calendar does not know yet."""


class ProcedureStepError(InputError):
    """A step of the sharing procedure that may not be taken now, or not by this party
    (``malformed``: what was asked cannot be read at all)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed
