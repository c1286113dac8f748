"""Errors of the mapping family; see ``schemas.exceptions`` for the whole tree."""

from __future__ import annotations

from schemas.exceptions import ConfigurationError, InputError
from schemas.issues import Issue, issue

__all__ = ["ItemsMappingError", "MappingDefinitionError", "SourceFormatError", "UnknownMappingError",
           "ValueMappingError"]


class MappingDefinitionError(ConfigurationError):
    """A mapping file is malformed: an unknown key, a bad rule, a missing table."""

    def __init__(self, message: str, *, source: str = "", line: int | None = None,
                 loc: tuple[str, ...] = ()) -> None:
        where = f"{source}:{line}: " if source and line else (f"{source}: " if source else "")
        super().__init__(where + message)
        self.source = source
        self.line = line
        self.message = message
        self.loc = loc  # the keys of the rule at fault, to find its line


class UnknownMappingError(ConfigurationError):
    """A mapping name that is neither built in nor an existing file."""


class SourceFormatError(InputError):
    """A source file or record cannot be decoded: bad JSON, XML, CSV, a workbook, an encoding, a refused
    DTD; raised while a file is read, it refuses the whole file (a header without a mapped column,
    a failed envelope check, a document without a list at its record path)."""


class ValueMappingError(InputError):
    """One value of one source record cannot be mapped (an unknown code, a malformed date)."""

    def issues(self, path: str) -> list[Issue]:
        """The record's issues this error stands for, at the target ``path``."""
        return [issue(path, "mapping", detail=str(self))]


class ItemsMappingError(ValueMappingError):
    """Items of a list rule (``each``) whose own rules failed: their issues, at paths within the list."""

    def __init__(self, problems: list[Issue]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems

    def issues(self, path: str) -> list[Issue]:
        """Each item's issue, its path under ``path`` (``/data/inspectors`` + ``/1/name``)."""
        return [Issue(path + p.path, p.code, p.message) for p in self.problems]
