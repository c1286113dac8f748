"""Mappings between the external systems' formats and the standard interface: a declarative
TOML language compiled once to plain functions (see docs/mapping.md)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from mappings.compiler import MISSING, CompiledMapping, compile_mapping
from mappings.definitions import MappingFile, load_definition
from mappings.exceptions import MappingDefinitionError, SourceFormatError, UnknownMappingError, ValueMappingError
from mappings.pipeline import ExampleOutcome, MappedRecord, map_record, map_stream, read_source, run_examples

__all__ = [
    "MISSING",
    "CompiledMapping",
    "ExampleOutcome",
    "MappedRecord",
    "MappingDefinitionError",
    "MappingFile",
    "SourceFormatError",
    "UnknownMappingError",
    "ValueMappingError",
    "builtin_mapping",
    "builtin_names",
    "compile_text",
    "map_record",
    "map_stream",
    "read_source",
    "run_examples",
]

_BUILTIN = resources.files("mappings").joinpath("builtin")


def builtin_names() -> list[str]:
    """The names of the built-in mappings."""
    return sorted(p.name.removesuffix(".toml") for p in _BUILTIN.iterdir() if p.name.endswith(".toml"))


def compile_text(text: str, *, source: str = "") -> CompiledMapping:
    """Check and compile a mapping file's text; errors name the file, key and line."""
    return compile_mapping(load_definition(text, source=source), source=source, text=text)


@cache
def builtin_mapping(name: str) -> CompiledMapping:
    """A built-in mapping by name, compiled once per process."""
    if name not in builtin_names():
        known = ", ".join(builtin_names())
        raise UnknownMappingError(f"未知的内置映射 / unknown built-in mapping {name!r} (built in: {known})")
    path = _BUILTIN.joinpath(f"{name}.toml")
    return compile_text(path.read_text(encoding="utf-8"), source=f"{name}.toml")
