"""Source formats decoded from byte streams the caller has opened: JSON (a document, an array
or NDJSON), CSV (UTF-8, UTF-8 with BOM, GB18030), spreadsheets (.xlsx, .xls, .ods) and XML
(hardened: no DTD, no entities, no network). JSON, CSV and XML are streamed: memory follows the
largest record, not the file; a spreadsheet's sheet is held whole while it is read.

A problem with one record becomes a ``SourceItem`` with an ``error``; the others go on. Where a
format cannot be resynchronised (a broken JSON array or XML document) the last item says so.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
import python_calamine
from lxml import etree

from mappings.exceptions import SourceFormatError

__all__ = [
    "MAX_RECORD_BYTES",
    "MAX_UNPACKED",
    "HeaderCheck",
    "SourceItem",
    "column_names",
    "parse_xml",
    "read_csv",
    "read_json",
    "read_sheet",
    "read_xml",
    "refuse_binary",
    "write_xml",
]

MAX_RECORD_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 16


class SourceItem(NamedTuple):
    """One decoded source record, or the reason it could not be decoded. (A named tuple: one is
    made for every record read, where a frozen dataclass costs several times as much to build.)"""

    index: int  # type: ignore[assignment]  # the record's place, in place of tuple.index
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
            raise SourceFormatError(f"not valid UTF-8: {exc.reason}") from exc
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
                raise SourceFormatError(f"malformed or truncated JSON in record {index}: {exc.msg}") from exc
            except RecursionError as exc:
                raise SourceFormatError(f"record {index} is nested too deeply") from exc
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
        except LookupError as exc:
            raise SourceFormatError(f"unknown encoding {name!r}") from exc
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


def column_names(rows: list[list[str]], join: str) -> list[str]:
    """The names of a header of one or more rows: each column's cells joined top to bottom, a
    blank upper cell above a named one taking the cell on its left (as merged cells do), blank and
    repeated parts left out (``被许可人`` over ``名称`` → ``被许可人/名称``). A name that several
    columns share is given as ``名称#1``, ``名称#2``…, so that reading it by the plain name is
    refused, not guessed. A column blank all the way down has no name (``""``)."""
    width = max((len(r) for r in rows), default=0)
    cells_of = [[str(c).strip() for c in row] + [""] * (width - len(row)) for row in rows]
    filled: list[list[str]] = []
    for depth, cells in enumerate(cells_of):
        below = cells_of[depth + 1:]
        for n in range(1, width):  # a merged upper cell spans the blanks to its right that head a column
            if not cells[n] and cells[n - 1] and any(row[n] for row in below):
                cells[n] = cells[n - 1]
        filled.append(cells)
    names = []
    for n in range(width):
        parts: list[str] = []
        for row in filled:
            if row[n] and (not parts or parts[-1] != row[n]):
                parts.append(row[n])
        names.append(join.join(parts))
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if counts[name] > 1 and name:
            seen[name] = seen.get(name, 0) + 1
            out.append(f"{name}#{seen[name]}")
        else:
            out.append(name)
    return out


HeaderCheck = Callable[[list[str]], None]


def _unheaded(cells: list[str], unnamed: list[int]) -> str | None:
    """Why a row cannot be read whole: a value in a column the header does not name."""
    lost = [n for n in unnamed if n < len(cells) and cells[n].strip()]
    if not lost:
        return None
    return f"row has a value in column {lost[0] + 1}, which has no header (the value would be lost)"

_BINARY_KINDS = ((b"PK\x03\x04", "a ZIP archive (an .xlsx workbook?)"),
                 (b"\xd0\xcf\x11\xe0", "an OLE document (an .xls workbook?)"), (b"%PDF", "a PDF document"))


def refuse_binary(head: bytes, expected: str) -> None:
    """Raise ``SourceFormatError`` where ``head`` is plainly not text: a workbook, a PDF, NUL bytes."""
    for magic, kind in _BINARY_KINDS:
        if head.startswith(magic):
            raise SourceFormatError(f"这是{kind.split(' (')[0]}而不是 {expected} / this is {kind}, not {expected}")
    if b"\x00" in head[:4096]:
        raise SourceFormatError(f"含有 NUL 字节的二进制文件不是 {expected} / a binary file (NUL bytes) is not "
                                f"{expected}")


def _csv_header(reader: Any, count: int, problems: dict[int, str]) -> list[list[str]]:
    """The first ``count`` rows of a CSV file (title and header rows), readable or refused."""
    lines = []
    try:
        for _ in range(count):
            lines.append(next(reader))
    except StopIteration:
        if not lines:
            raise SourceFormatError("空文件 / empty file: no header line") from None
        raise SourceFormatError(f"文件没有表头 / no header: the file ends within its first {count} lines") from None
    except csv.Error as exc:
        raise SourceFormatError(f"表头无法解析 / malformed CSV header: line {reader.line_num}: {exc}") from exc
    damaged = [n for n in problems if n <= reader.line_num]
    if damaged:
        raise SourceFormatError(f"表头无法解析 / the header cannot be read: line {damaged[0]}: {problems[damaged[0]]}")
    return lines


def read_csv(stream: IO[bytes], *, encodings: list[str], delimiter: str = ",", skip_rows: int = 0,
             header_rows: int = 1, header_join: str = "/", check_header: HeaderCheck | None = None
             ) -> Iterator[SourceItem]:
    """Rows of a CSV file as dicts keyed by the header's column names (see ``column_names``), after
    ``skip_rows`` title lines; the encoding is detected from the start. A file that cannot be read
    as such (not text, no header, a header ``check_header`` refuses) raises ``SourceFormatError``
    before any row: the whole file is refused. A bad row is an item with an error; the rest go on."""
    head = stream.read(_CHUNK)
    refuse_binary(head, "CSV")
    encoding = _detect_encoding(head, encodings)
    problems: dict[int, str] = {}  # by line number: why that line cannot be read as the file's text
    reader = csv.reader(_text_lines(stream, head, encoding, problems), delimiter=delimiter, strict=True)
    header_lines = _csv_header(reader, skip_rows + header_rows, problems)
    header = column_names(header_lines[skip_rows:], header_join)
    if check_header is not None:
        check_header(header)
    unnamed = [n for n, name in enumerate(header) if not name]
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
        damage = [problems[n] for n in sorted(problems) if last_line < n <= reader.line_num]
        last_line = reader.line_num
        if damage:
            yield SourceItem(index, where, error=damage[0])
        elif len(row) != len(header):
            yield SourceItem(index, where, error=f"row has {len(row)} fields, the header has {len(header)}")
        elif unnamed and (lost := _unheaded(row, unnamed)):
            yield SourceItem(index, where, error=lost)
        else:
            yield SourceItem(index, where, dict(zip(header, row, strict=True)))
        index += 1


# ---- spreadsheets ---------------------------------------------------------------------------

def _cell_text(value: Any) -> str:
    """A spreadsheet cell as the text a CSV export would hold: ``2026-03-05`` for a date cell,
    ``1200`` for a whole number, ``0.35`` for a fraction, ``true`` for a boolean."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return "" if value is None else str(value)


MAX_UNPACKED = 256 * 1024 * 1024  # what a workbook may unpack to: a sheet is held whole while it is read


def _refuse_bomb(stream: IO[bytes]) -> None:
    """Refuse a workbook (a ZIP archive) that unpacks to more than ``MAX_UNPACKED`` bytes, before
    any of it is unpacked: a small upload must not become gigabytes of cells."""
    start = stream.tell()
    if stream.read(4) != b"PK\x03\x04":
        stream.seek(start)
        return
    stream.seek(start)
    try:
        with zipfile.ZipFile(stream) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise SourceFormatError(f"不是可读的电子表格 / not a readable workbook: {exc}") from exc
    finally:
        stream.seek(start)
    if unpacked > MAX_UNPACKED:
        raise SourceFormatError(f"工作簿解压后过大 / the workbook unpacks to {unpacked:,} bytes, over "
                                f"{MAX_UNPACKED:,}: export a sheet this large as CSV, which is streamed")


def _open_sheet(stream: IO[bytes], sheet: str | int) -> Any:
    path = getattr(stream, "name", None)  # a file on disk is read by calamine itself: less memory held
    _refuse_bomb(stream)
    try:
        if isinstance(path, str) and Path(path).is_file():
            workbook = python_calamine.CalamineWorkbook.from_path(path)
        else:
            workbook = python_calamine.CalamineWorkbook.from_filelike(stream)
    except python_calamine.CalamineError as exc:
        raise SourceFormatError(f"不是可读的电子表格 / not a readable workbook (.xlsx, .xls, .ods): {exc}") from exc
    names = workbook.sheet_names
    if isinstance(sheet, int) and not 1 <= sheet <= len(names):
        raise SourceFormatError(f"工作簿只有 {len(names)} 个工作表 / the workbook has {len(names)} sheets, not a "
                                f"sheet {sheet}")
    if isinstance(sheet, str) and sheet not in names:
        raise SourceFormatError(f"没有工作表 {sheet!r} / no sheet {sheet!r} (sheets: {', '.join(names)})")
    try:
        return workbook.get_sheet_by_index(sheet - 1) if isinstance(sheet, int) else workbook.get_sheet_by_name(sheet)
    except python_calamine.CalamineError as exc:  # a damaged sheet
        raise SourceFormatError(f"工作表无法读取 / the sheet cannot be read: {exc}") from exc


def read_sheet(stream: IO[bytes], *, sheet: str | int = 1, skip_rows: int = 0, header_rows: int = 1,
               header_join: str = "/", check_header: HeaderCheck | None = None) -> Iterator[SourceItem]:
    """Rows of one sheet of a workbook (.xlsx, .xlsm, .xls, .ods; python-calamine tells them apart)
    as dicts, read as ``read_csv`` reads a CSV file: ``skip_rows`` title rows, then ``header_rows``
    header rows. ``sheet`` is a name or a 1-based position. Date cells become ``YYYY-MM-DD`` (or
    ``YYYY-MM-DD HH:MM:SS``) text. A file that is not a workbook, a missing sheet or a refused
    header raises ``SourceFormatError``: the whole file is refused."""
    table = _open_sheet(stream, sheet)
    first_row = table.start[0] + 1 if table.start else 1
    rows = iter(table.iter_rows())
    header_lines = []
    for _ in range(skip_rows + header_rows):
        line = next(rows, None)
        if line is None:
            raise SourceFormatError(f"工作表没有表头 / no header: the sheet ends within its first "
                                    f"{skip_rows + header_rows} rows")
        header_lines.append([_cell_text(c) for c in line])
    header = column_names(header_lines[skip_rows:], header_join)
    if check_header is not None:
        check_header(header)
    width = len(header)
    unnamed = [n for n, name in enumerate(header) if not name]
    index = 0
    for number, line in enumerate(rows, first_row + skip_rows + header_rows):
        cells = [c if c.__class__ is str else _cell_text(c) for c in line]  # most cells are text already
        if not "".join(cells).strip():
            continue
        if len(cells) > width and "".join(cells[width:]).strip():
            yield SourceItem(index, f"row {number}", error=f"row has values beyond the header's {width} columns")
        elif unnamed and (lost := _unheaded(cells, unnamed)):
            yield SourceItem(index, f"row {number}", error=lost)
        else:
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            yield SourceItem(index, f"row {number}", dict(zip(header, cells, strict=False)))
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
        raise SourceFormatError(f"malformed XML: {exc}") from exc
    if _has_dtd(root.getroottree()):
        raise SourceFormatError(_DTD_REFUSED)
    return root


def _within(element: Any, ancestors: tuple[str, ...]) -> bool:
    """Whether ``element``'s nearest ancestors are ``ancestors`` (outermost first; a leading ``""``
    requires the outermost of them to be the document's root)."""
    parent = element.getparent()
    for tag in reversed(ancestors):
        if tag == "":
            return parent is None
        if parent is None or parent.tag != tag:
            return False
        parent = parent.getparent()
    return True


def read_xml(stream: IO[bytes], *, record_path: tuple[str, ...]) -> Iterator[SourceItem]:
    """Each record element of an XML document, streamed and freed after use: elements whose tag is
    the last of ``record_path`` (Clark notation) at any depth, within the elements the path names
    before it. A document that declares a DTD yields one error and nothing else: the prolog, where
    a DTD must stand, has been parsed by the time the first record ends, and is checked first."""
    *ancestors, record_tag = record_path
    events = etree.iterparse(stream, events=("end",), tag=record_tag, resolve_entities=False, no_network=True,
                             load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)
    index = 0
    try:
        for _event, element in events:
            if ancestors and not _within(element, tuple(ancestors)):
                continue
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
