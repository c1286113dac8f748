"""Errors of the policy family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError

__all__ = ["PolicyDefinitionError"]


class PolicyDefinitionError(ConfigurationError):
    """A sharing rule is wrong: an unknown consumer, record type, field path or mask."""
