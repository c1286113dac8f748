"""The one exception hierarchy of supex, grouped by what the caller must do.

Every package adds its leaves in its own ``exceptions.py``; all of them root here,
because ``schemas`` is the package every other one imports::

    SupexError
    ├── ConfigurationError   fix the configuration, mapping or schema file, then run again
    │   ├── UnknownRecordTypeError       (schemas)
    │   ├── MappingDefinitionError       (mappings)
    │   └── UnknownMappingError          (mappings)
    ├── InputError           this input is malformed; other inputs go on
    │   └── SourceFormatError            (mappings: JSON, XML, CSV, workbooks, encodings, DTDs, headers)
    ├── RetriableError       a resource is unavailable now; the same call may succeed later
    └── FatalError           an invariant is broken; stop and investigate

Validation failures of a record are not exceptions: they are data (``schemas.Issue``).
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "FatalError",
    "InputError",
    "RetriableError",
    "SupexError",
    "UnknownRecordTypeError",
]


class SupexError(Exception):
    """Root of every error supex raises on purpose."""


class ConfigurationError(SupexError):
    """A configuration, mapping or schema definition is wrong; nothing runs until it is fixed."""


class InputError(SupexError):
    """One input (file, body, record) cannot be read; the others are still processed."""


class RetriableError(SupexError):
    """A resource is unavailable for now; retrying later may succeed."""


class FatalError(SupexError):
    """An invariant is broken (for example a corrupted store); processing must stop."""


class UnknownRecordTypeError(ConfigurationError):
    """A record type that the standard interface does not define was named."""

    def __init__(self, record_type: str) -> None:
        super().__init__(f"未知的记录类型 / unknown record type: {record_type!r}")
        self.record_type = record_type
