"""Source stream → source items → standard records with their verdicts, and mapping examples.

Pure functions over streams the caller opened; the gateway and the command line share them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from lxml import etree

from mappings.compiler import CompiledMapping, default_rows
from mappings.exceptions import SourceFormatError, ValueMappingError
from mappings.formats import SourceItem, parse_xml, read_csv, read_json, read_sheet, read_xml
from schemas import Issue, Validator, Verdict
from schemas.issues import issue

__all__ = ["ExampleOutcome", "MappedRecord", "map_record", "map_stream", "read_source",
           "reverse_all", "run_examples", "write_rows"]



@dataclass(frozen=True, slots=True)
class MappedRecord:
    """A source record's standard record (``None`` if it could not be decoded) and its verdict."""

    index: int
    where: str
    record: dict[str, Any] | None
    verdict: Verdict

    @property
    def record_id(self) -> str | None:
        """The record's id, where the record has one."""
        value = self.record.get("record_id") if self.record else None
        return value if isinstance(value, str) else None


def read_source(mapping: CompiledMapping, stream: IO[bytes]) -> Iterator[SourceItem]:
    """Decode ``stream`` in the mapping's source format: the records where ``[source] record`` says
    they are. ``SourceFormatError`` (raised while iterating) refuses the whole file: it is not
    what the mapping reads (another format, a header without a mapped column, a refused envelope)."""
    options = mapping.options
    if mapping.format == "csv":
        return read_csv(stream, encodings=options.encodings, delimiter=options.delimiter, skip_rows=options.skip_rows,
                        header_rows=options.header_rows, header_join=options.header_join,
                        check_header=mapping.check_header)
    if mapping.format == "xlsx":
        return read_sheet(stream, sheet=options.sheet, skip_rows=options.skip_rows, header_rows=options.header_rows,
                          header_join=options.header_join, check_header=mapping.check_header)
    if mapping.format == "xml":
        return read_xml(stream, record_path=mapping.record_path)
    if options.record is None and options.envelope is None:
        return _json_rows(read_json(stream))
    return _json_records(read_json(stream), mapping)


def _json_records(items: Iterator[SourceItem], mapping: CompiledMapping) -> Iterator[SourceItem]:
    """The records of each JSON document (or NDJSON line) at ``[source] record``, once its envelope
    check holds. A document whose check fails, or without a list there, refuses the file."""
    options = mapping.options
    index = 0
    for item in items:
        if item.error is not None:
            yield SourceItem(index, item.where, error=item.error)
            index += 1
            continue
        if options.envelope is not None:
            mapping.check_envelope(item.value, item.where)
        rows = mapping.records_of(item.value, item.where)
        for n, row in enumerate(rows):
            yield SourceItem(index, f"{item.where}, item {n}" if item.where.startswith("line") else f"record {n}",
                             row)
            index += 1


def _json_rows(items: Iterator[SourceItem]) -> Iterator[SourceItem]:
    """A JSON document that is an object holding its records (``default_rows``) is read as them."""
    for item in items:
        rows = default_rows(item.value) if item.index == 0 and isinstance(item.value, dict) else None
        if rows is not None and not (len(rows) == 1 and rows[0] is item.value):
            yield from (SourceItem(n, f"record {n}", row) for n, row in enumerate(rows))
        else:
            yield item


def map_record(mapping: CompiledMapping, validator: Validator | None, source: Any) -> tuple[dict[str, Any], Verdict]:
    """Map one source record and, with a validator, validate the result; all issues together."""
    record, problems = mapping.to_standard(source)
    if validator is None:
        return record, Verdict(tuple(problems))
    verdict = validator.validate(record)
    if not problems:
        return record, verdict
    mapped_badly = {p.path for p in problems}
    rest = tuple(e for e in verdict.errors if e.path not in mapped_badly)
    return record, Verdict((*problems, *rest), verdict.warnings)


def map_stream(mapping: CompiledMapping, validator: Validator | None, stream: IO[bytes]) -> Iterator[MappedRecord]:
    """Every record of a source stream, mapped (and validated where a validator is given)."""
    for item in read_source(mapping, stream):
        if item.error is not None:
            yield MappedRecord(item.index, item.where, None, Verdict((issue("", "malformed", detail=item.error),)))
            continue
        record, verdict = map_record(mapping, validator, item.value)
        yield MappedRecord(item.index, item.where, record, verdict)


@dataclass(frozen=True)
class ExampleOutcome:
    """Whether one example of a mapping holds, and what differs where it does not."""

    mapping: str
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the example holds."""
        return not self.problems


def _differences(expected: Any, actual: Any, at: str = "") -> Iterator[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected.keys() | actual.keys():
            if key not in actual:
                yield f"{at}/{key}: expected {expected[key]!r}, missing"
            elif key not in expected:
                yield f"{at}/{key}: unexpected {actual[key]!r}"
            else:
                yield from _differences(expected[key], actual[key], f"{at}/{key}")
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for n, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from _differences(e, a, f"{at}/{n}")
    elif expected != actual:
        yield f"{at or '/'}: expected {expected!r}, got {actual!r}"


def _example_source(mapping: CompiledMapping, source: Any) -> Any:
    if mapping.format == "xml":
        if not isinstance(source, str):
            raise SourceFormatError("an XML example's source is the element as a string")
        return parse_xml(source.encode())
    if mapping.format == "csv" and isinstance(source, dict):
        return {k: str(v) for k, v in source.items()}
    return source


def run_examples(mapping: CompiledMapping, validator: Validator) -> list[ExampleOutcome]:
    """Run every example of ``mapping``: mapped as expected, valid, and back again where reversible."""
    outcomes = []
    for example in mapping.definition.example:
        problems: list[str] = []
        try:
            source = _example_source(mapping, example.source)
        except SourceFormatError as exc:
            outcomes.append(ExampleOutcome(mapping.name, example.name, [str(exc)]))
            continue
        record, verdict = map_record(mapping, validator, source)
        codes = {e.code for e in verdict.errors}
        if example.errors is not None:
            missing = set(example.errors) - codes
            if missing or verdict.ok:
                problems.append(f"expected errors {sorted(example.errors)}, got {sorted(codes) or 'none'}")
        else:
            problems += [f"invalid: {e.path} {e.code}" for e in verdict.errors]
        if example.expect is not None:
            problems += list(_differences(example.expect, record))
            if mapping.reversible and verdict.ok:
                problems += _round_trip(mapping, record)
        outcomes.append(ExampleOutcome(mapping.name, example.name, problems))
    return outcomes


def _round_trip(mapping: CompiledMapping, record: dict[str, Any]) -> list[str]:
    back, problems = mapping.from_standard(record)
    if problems:
        return [f"reverse: {p.path} {p.message}" for p in problems]
    if mapping.format == "xml":
        back = parse_xml(etree.tostring(back))
    again, issues = mapping.to_standard(back)
    found: list[Issue] = issues
    return [f"round trip: {p.path} {p.code}" for p in found] + [
        f"round trip {d}" for d in _differences(record, again)
    ]


def reverse_all(mapping: CompiledMapping, records: Iterable[dict[str, Any]]) -> list[Any]:
    """Standard records mapped back to the source format, all of them or ``ValueMappingError``
    naming the first that cannot be (its id, the path and why)."""
    rows = []
    for record in records:
        row, problems = mapping.from_standard(record)
        if problems:
            raise ValueMappingError(f"{record.get('record_id')}: {problems[0].path} {problems[0].message}")
        rows.append(row)
    return rows


def write_rows(mapping: CompiledMapping, rows: Iterable[Any], out: IO[bytes], *, lines: bool = False) -> int:
    """Rows made by ``from_standard`` written in the mapping's own format: one XML document, one CSV
    file with its header, or JSON (an array, or one row a line with ``lines``). ``None`` rows (those
    that could not be mapped back) are skipped and counted; returns that count."""
    skipped = 0
    if mapping.format == "xml":
        with etree.xmlfile(out, encoding="utf-8") as document:
            document.write_declaration()
            with document.element(mapping.root_tag, nsmap=mapping.nsmap):
                for element in rows:
                    if element is None:
                        skipped += 1
                    else:
                        document.write(element)
    elif mapping.format == "csv":
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=mapping.reverse_columns)
        writer.writeheader()
        for row in rows:
            if row is None:
                skipped += 1
            else:
                writer.writerow(row)
        text.detach()
    else:
        first = True
        out.write(b"" if lines else b"[")
        for row in rows:
            if row is None:
                skipped += 1
                continue
            out.write(orjson.dumps(row) + b"\n" if lines else (b"" if first else b",") + orjson.dumps(row))
            first = False
        out.write(b"" if lines else b"]")
    out.flush()
    return skipped
