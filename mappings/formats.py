"""Source formats decoded from byte streams the caller has opened: JSON (a document, an array
or NDJSON), CSV (UTF-8, UTF-8 with BOM, GB18030) and XML (hardened: no DTD, no entities, no
network). Everything is streamed: memory follows the largest record, not the file.

A problem with one record becomes a ``SourceItem`` with an ``error``; the others go on. Where a
format cannot be resynchronised (a broken JSON array or XML document) the last item says so.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson
from lxml import etree

from mappings.exceptions import SourceFormatError

__all__ = [
    "MAX_RECORD_BYTES",
    "SourceItem",
    "parse_xml",
    "read_csv",
    "read_json",
    "read_xml",
    "write_xml",
]

MAX_RECORD_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One decoded source record, or the reason it could not be decoded."""

    index: int
    where: str
    value: Any = None
    error: str | None = None


def _lines(stream: IO[bytes], head: bytes = b"") -> Iterator[bytes | None]:
    """Binary lines of ``stream``; ``None`` stands for a line longer than ``MAX_RECORD_BYTES``."""
    buffer = head
    skipping = False
    while True:
        newline = buffer.find(b"\n")
        if newline >= 0:
            line, buffer = buffer[: newline + 1], buffer[newline + 1 :]
            if not skipping:
                yield line if newline < MAX_RECORD_BYTES else None
            skipping = False
            continue
        if len(buffer) > MAX_RECORD_BYTES:
            if not skipping:
                yield None
            skipping, buffer = True, b""
        chunk = stream.read(_CHUNK)
        if not chunk:
            if buffer and not skipping:
                yield buffer
            return
        buffer += chunk


# ---- JSON ---------------------------------------------------------------------------------

def read_json(stream: IO[bytes]) -> Iterator[SourceItem]:
    """Records of a JSON object, a JSON array of objects, or NDJSON (one value a line)."""
    head = stream.read(_CHUNK)
    start = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if start.startswith(b"["):
        yield from _json_array(stream, head.removeprefix(codecs.BOM_UTF8))
    else:
        yield from _json_lines(stream, head.removeprefix(codecs.BOM_UTF8))


def _json_lines(stream: IO[bytes], head: bytes) -> Iterator[SourceItem]:
    index = 0
    lines = _lines(stream, head)
    for number, line in enumerate(lines, 1):
        if line is None:
            yield SourceItem(index, f"line {number}", error=f"line longer than {MAX_RECORD_BYTES} bytes")
            index += 1
            continue
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if index == 0 and line.lstrip().startswith(b"{"):
                # not NDJSON after all: one (pretty-printed) JSON document
                yield from _json_document(line + b"".join(x or b"" for x in lines), f"line {number}")
                return
            yield SourceItem(index, f"line {number}", error=f"malformed JSON: {exc}")
        else:
            yield SourceItem(index, f"line {number}", value)
        index += 1


def _json_document(data: bytes, where: str) -> Iterator[SourceItem]:
    if len(data) > MAX_RECORD_BYTES:
        yield SourceItem(0, where, error=f"JSON document larger than {MAX_RECORD_BYTES} bytes; use NDJSON")
        return
    try:
        yield SourceItem(0, where, orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        yield SourceItem(0, where, error=f"malformed JSON: {exc}")


def _json_array(stream: IO[bytes], head: bytes) -> Iterator[SourceItem]:
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    text, pos, index, eof, consumed = "", 0, 0, False, 0

    def more() -> bool:
        nonlocal text, pos, eof, consumed
        chunk = head if not consumed else stream.read(_CHUNK)
        consumed += len(chunk) or 1
        eof = not chunk
        try:
            text = text[pos:] + utf8.decode(chunk, final=eof)
        except UnicodeDecodeError as exc:
            raise SourceFormatError(f"not valid UTF-8: {exc.reason}") from None
        pos = 0
        return not eof

    try:
        more()
        pos = text.index("[") + 1
        expect_value = True
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos >= len(text):
                if not more():
                    raise SourceFormatError("JSON array not closed (truncated file?)")
                continue
            char = text[pos]
            if char == "]":
                return
            if not expect_value:
                if char != ",":
                    raise SourceFormatError(f"expected ',' or ']' after record {index - 1}")
                pos += 1
                expect_value = True
                continue
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                if not eof and len(text) - pos < MAX_RECORD_BYTES:
                    more()
                    continue
                raise SourceFormatError(f"malformed or truncated JSON in record {index}: {exc.msg}") from None
            except RecursionError:
                raise SourceFormatError(f"record {index} is nested too deeply") from None
            if end == len(text) and not eof:
                more()  # a number may continue in the next chunk
                continue
            yield SourceItem(index, f"record {index}", value)
            index += 1
            pos, expect_value = end, False
    except SourceFormatError as exc:
        yield SourceItem(index, f"record {index}", error=f"{exc}; the rest of the file was not read")


# ---- CSV ----------------------------------------------------------------------------------

def _detect_encoding(head: bytes, encodings: list[str]) -> str:
    """The first encoding that decodes the head; else the one reading furthest past the header."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    reach: dict[str, int] = {}
    for name in encodings:
        try:
            codecs.getincrementaldecoder(name)().decode(head, final=False)
        except UnicodeDecodeError as exc:
            reach[name] = exc.start
            continue
        except LookupError:
            raise SourceFormatError(f"unknown encoding {name!r}") from None
        return name
    best = max(reach, key=lambda n: reach[n]) if reach else None
    if best is None or reach[best] <= head.find(b"\n"):
        raise SourceFormatError(f"not in any of the encodings {', '.join(encodings)}")
    return best


def _text_lines(stream: IO[bytes], head: bytes, encoding: str, problems: dict[int, str]) -> Iterator[str]:
    """The file's lines as text, noting in ``problems`` each line that does not read as ``encoding``."""
    undecodable = f"bytes not valid in {encoding} (or line too long)"
    for number, line in enumerate(_lines(stream, head), 1):
        if line is None:
            problems[number] = undecodable
            yield "\n"
            continue
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError:
            problems[number] = undecodable
            yield line.decode(encoding, errors="replace")
            continue
        if not encoding.startswith("utf") and not line.isascii() and _is_utf8(line):
            # GB18030 reads almost any bytes, UTF-8 ones too, as other characters: a line that is
            # valid UTF-8 in a GB18030 file is a UTF-8 line, and would be stored garbled
            problems[number] = f"this line is UTF-8 while the file is {encoding}: mixed encodings"
        yield text


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_csv(stream: IO[bytes], *, encodings: list[str], delimiter: str = ",") -> Iterator[SourceItem]:
    """Rows of a CSV file with a header line, as dicts; the encoding is detected from the start."""
    head = stream.read(_CHUNK)
    try:
        encoding = _detect_encoding(head, encodings)
    except SourceFormatError as exc:
        yield SourceItem(0, "line 1", error=str(exc))
        return
    problems: dict[int, str] = {}  # by line number: why that line cannot be read as the file's text
    reader = csv.reader(_text_lines(stream, head, encoding, problems), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        yield SourceItem(0, "line 1", error="empty file: no header line")
        return
    except csv.Error as exc:
        yield SourceItem(0, "line 1", error=f"malformed CSV header: {exc}")
        return
    index, last_line = 0, reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceItem(index, f"line {reader.line_num}", error=f"malformed CSV: {exc}")
            index, last_line = index + 1, reader.line_num
            continue
        where = f"line {reader.line_num}"
        if not row or all(not cell.strip() for cell in row):
            last_line = reader.line_num
            continue
        damaged = [problems[n] for n in sorted(problems) if last_line < n <= reader.line_num]
        last_line = reader.line_num
        if damaged:
            yield SourceItem(index, where, error=damaged[0])
        elif len(row) != len(header):
            yield SourceItem(index, where, error=f"row has {len(row)} fields, the header has {len(header)}")
        else:
            yield SourceItem(index, where, dict(zip(header, row, strict=True)))
        index += 1


# ---- XML ----------------------------------------------------------------------------------

def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


_DTD_REFUSED = "XML with a DTD or entity declarations is refused (no DTDs, no entities)"


def _has_dtd(tree: Any) -> bool:
    """Whether the parsed document declared a DTD (internal or external): as the parser read it,
    whatever the encoding, comments or length of the prolog — not as a pattern would guess."""
    docinfo = tree.docinfo
    return bool(docinfo.doctype) or docinfo.internalDTD is not None or docinfo.externalDTD is not None


def parse_xml(data: bytes) -> Any:
    """One XML document or fragment, parsed with the hardened parser; DTDs are refused."""
    try:
        root = etree.fromstring(data, parser=_hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise SourceFormatError(f"malformed XML: {exc}") from None
    if _has_dtd(root.getroottree()):
        raise SourceFormatError(_DTD_REFUSED)
    return root


def read_xml(stream: IO[bytes], *, record_tag: str) -> Iterator[SourceItem]:
    """Each ``record_tag`` element (Clark notation) of an XML document, streamed and freed after use.
    A document that declares a DTD yields one error and nothing else: the prolog, where a DTD must
    stand, has been parsed by the time the first record ends, and is checked before it is given."""
    events = etree.iterparse(stream, events=("end",), tag=record_tag, resolve_entities=False, no_network=True,
                             load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)
    index = 0
    try:
        for _event, element in events:
            if index == 0 and _has_dtd(element.getroottree()):
                yield SourceItem(0, "element 0", error=_DTD_REFUSED)
                return
            yield SourceItem(index, f"element {index} (line {element.sourceline})", element)
            index += 1
            element.clear()  # free what was read: memory follows one record, not the file
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]
        if index == 0 and events.root is not None and _has_dtd(events.root.getroottree()):
            yield SourceItem(0, "element 0", error=_DTD_REFUSED)
    except etree.XMLSyntaxError as exc:
        yield SourceItem(index, f"element {index}", error=f"malformed XML: {exc}; the rest of the file was not read")


def write_xml(elements: list[Any], *, root_tag: str, nsmap: dict[str | None, str]) -> bytes:
    """An XML document of ``elements`` under a ``root_tag`` element, UTF-8 with a declaration."""
    root = etree.Element(root_tag, nsmap=nsmap)
    root.extend(elements)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
