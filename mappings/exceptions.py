"""Errors of the mapping family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, InputError

__all__ = ["MappingDefinitionError", "SourceFormatError", "UnknownMappingError", "ValueMappingError"]


class MappingDefinitionError(ConfigurationError):
    """A mapping file is malformed: an unknown key, a bad rule, a missing table."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        where = f"{source}:{line}: " if source and line else (f"{source}: " if source else "")
        super().__init__(where + message)
        self.source = source
        self.line = line


class UnknownMappingError(ConfigurationError):
    """A mapping name that is neither built in nor an existing file."""


class SourceFormatError(InputError):
    """A source file or record cannot be decoded: bad JSON, XML, CSV or encoding, or a refused DTD."""


class ValueMappingError(InputError):
    """One value of one source record cannot be mapped (an unknown code, a malformed date)."""
