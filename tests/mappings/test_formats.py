"""Source formats: streamed, hardened, and precise about what is wrong where."""

from __future__ import annotations

import io

import pytest

from mappings.exceptions import SourceFormatError
from mappings.formats import MAX_RECORD_BYTES, parse_xml, read_csv, read_json, read_xml, write_xml

NS = "urn:sd:zfjd:xzcf:1"
TAG = f"{{{NS}}}XZCF"


def _json(data: bytes) -> list[tuple[object, str | None]]:
    return [(i.value, i.error) for i in read_json(io.BytesIO(data))]


def test_json_object_array_and_ndjson() -> None:
    """One object, an array of objects and NDJSON all give their records in order."""
    assert _json(b'{"a": 1}') == [({"a": 1}, None)]
    assert _json(b'  [{"a": 1}, {"a": 2} ,\n{"a": 3}]') == [({"a": 1}, None), ({"a": 2}, None), ({"a": 3}, None)]
    assert _json(b'{"a": 1}\n\n{"a": 2}\n') == [({"a": 1}, None), ({"a": 2}, None)]
    assert _json(b'{\n "a": 1\n}\n') == [({"a": 1}, None)]
    assert _json(b"\xef\xbb\xbf[]") == []


def test_a_malformed_ndjson_line_does_not_stop_the_others() -> None:
    """The broken line is reported with its number; the lines after it are read."""
    items = list(read_json(io.BytesIO(b'{"a": 1}\n{broken\n{"a": 3}\n')))
    assert [i.value for i in items] == [{"a": 1}, None, {"a": 3}]
    assert items[1].where == "line 2"
    assert "malformed JSON" in (items[1].error or "")


def test_a_large_array_is_streamed_across_chunks() -> None:
    """An array larger than the read chunk is split into records exactly."""
    body = b"[" + b",".join(b'{"n": %d, "pad": "%s"}' % (n, b"x" * 50) for n in range(5000)) + b"]"
    items = list(read_json(io.BytesIO(body)))
    assert [i.value["n"] for i in items] == list(range(5000))  # type: ignore[index]


@pytest.mark.parametrize(("body", "words"), [
    (b'[{"a": 1}, {"a": ', "truncated JSON in record 1"),
    (b'[{"a": 1}, ', "not closed"),
    (b'[{"a": 1} {"a": 2}]', "expected ','"),
    (b'[{"a": 1}, {"a": \xff}]', "UTF-8"),
    (b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", "nested too deeply"),
])
def test_broken_arrays_keep_what_came_before(body: bytes, words: str) -> None:
    """Records before the fault are kept; the fault is named and reading stops there."""
    items = list(read_json(io.BytesIO(body)))
    assert words in (items[-1].error or "")
    assert all(i.error is None for i in items[:-1])


def test_deep_ndjson_nesting_and_invalid_utf8_are_errors() -> None:
    """10^5-deep nesting and invalid UTF-8 in a line are per-line errors."""
    items = list(read_json(io.BytesIO(b'{"a": 1}\n' + b"[" * 100_000 + b"\n" + b'{"a": "\xff"}\n{"a": 2}\n')))
    assert [i.error is None for i in items] == [True, False, False, True]


def test_overlong_lines_are_skipped_with_an_error() -> None:
    """A line longer than the record limit is refused without being held in memory whole."""
    body = b'{"a": 1}\n' + b'{"a": "' + b"x" * (MAX_RECORD_BYTES + 10) + b'"}\n{"a": 2}\n'
    items = list(read_json(io.BytesIO(body)))
    assert [i.value for i in items] == [{"a": 1}, None, {"a": 2}]


CSV_TEXT = "编号,名称,人员\nRW1,济南鲁达食品有限公司,\"张三、李四\"\nRW2,\"青岛\n泉德\",王五\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_each_encoding(encoding: str) -> None:
    """UTF-8, UTF-8 with BOM and GB18030 all read to the same rows, quoted newlines included."""
    items = list(read_csv(io.BytesIO(CSV_TEXT.encode(encoding)), encodings=["utf-8", "gb18030"]))
    assert [i.value for i in items] == [{"编号": "RW1", "名称": "济南鲁达食品有限公司", "人员": "张三、李四"},
                                        {"编号": "RW2", "名称": "青岛\n泉德", "人员": "王五"}]


def test_a_csv_row_with_bad_bytes_or_fields_is_reported_alone() -> None:
    """A row with bytes invalid in the file's encoding, or the wrong field count, is an error; others pass."""
    body = "编号,名称\nRW1,甲\n".encode() + b"RW2,\xff\xfe\n" + "RW3,丙,多余\nRW4,丁\n".encode()
    items = list(read_csv(io.BytesIO(body), encodings=["utf-8"]))
    assert [i.error is None for i in items] == [True, False, False, True]
    assert "not valid in utf-8" in (items[1].error or "")
    assert "3 fields" in (items[2].error or "")


def test_a_utf8_line_in_a_gb18030_csv_is_reported_not_read_garbled() -> None:
    """UTF-8 bytes of 济南 are also valid GB18030 (as 娴庡崡): such a line is a mixed encoding, not text."""
    body = "编号,名称\n1,济南市\n".encode("gb18030") + "2,济南\n".encode()
    items = list(read_csv(io.BytesIO(body), encodings=["utf-8", "gb18030"]))
    assert items[0].value == {"编号": "1", "名称": "济南市"}
    assert items[1].value is None and "this line is UTF-8 while the file is gb18030" in str(items[1].error)


def test_csv_empty_and_undecodable_files() -> None:
    """An empty file and a file in none of the encodings refuse the whole file, each with one clear error."""
    with pytest.raises(SourceFormatError, match="empty file"):
        next(read_csv(io.BytesIO(b""), encodings=["utf-8"]))
    with pytest.raises(SourceFormatError, match="encodings"):
        next(read_csv(io.BytesIO("编号\n甲\n".encode("gb18030")), encodings=["utf-8"]))


XML = (f'<?xml version="1.0"?><XZCF_LIST xmlns="{NS}">'
       "<XZCF><CF_ID>1</CF_ID></XZCF><XZCF><CF_ID>2</CF_ID></XZCF></XZCF_LIST>")


def test_xml_records_are_streamed() -> None:
    """Each record element is handed over in turn."""
    ids = [i.value.findtext(f"{{{NS}}}CF_ID") for i in read_xml(io.BytesIO(XML.encode()), record_path=(TAG,))]
    assert ids == ["1", "2"]


@pytest.mark.parametrize("doc", [
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    "<XZCF_LIST><XZCF>&b;</XZCF></XZCF_LIST>",
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><XZCF_LIST><XZCF>&e;</XZCF></XZCF_LIST>',
    '<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><XZCF_LIST/>',
])
def test_dtds_and_entities_are_refused(doc: str) -> None:
    """Billion laughs, external entities and external DTDs are refused, no record given."""
    (item,) = read_xml(io.BytesIO(doc.encode()), record_path=(TAG,))
    assert "DTD" in (item.error or "")
    with pytest.raises(SourceFormatError):
        parse_xml(doc.encode())


_DTD = '<!DOCTYPE XZCF_LIST [<!ENTITY hidden "declared">]>'


@pytest.mark.parametrize(("name", "doc"), [
    ("after a comment holding '<a'", ('<?xml version="1.0"?><!-- <a -->' + _DTD + XML.split("?>", 1)[1]).encode()),
    ("behind a 70 KB prolog", ('<?xml version="1.0"?><!-- ' + "x" * 70_000 + " -->" + _DTD
                               + XML.split("?>", 1)[1]).encode()),
    ("in UTF-16", ('<?xml version="1.0" encoding="UTF-16"?>' + _DTD + XML.split("?>", 1)[1]).encode("utf-16")),
    ("in a document without records", ('<?xml version="1.0"?>' + _DTD + "<XZCF_LIST/>").encode()),
])
def test_a_dtd_is_refused_however_it_is_hidden(name: str, doc: bytes) -> None:
    """Decided from what the parser read (the document's DTD), not by a pattern over the bytes:
    the three ways past the pattern that an attacker used, and a document with nothing else."""
    assert name
    items = list(read_xml(io.BytesIO(doc), record_path=(TAG,)))
    assert len(items) == 1 and "DTD" in (items[0].error or "")
    with pytest.raises(SourceFormatError, match="DTD"):
        parse_xml(doc)


def test_undeclared_entities_and_broken_xml_are_errors() -> None:
    """An entity reference without a DTD, or a truncated document, is a parse error after the good records."""
    items = list(read_xml(io.BytesIO(XML[:-20].encode()), record_path=(TAG,)))
    assert items[0].error is None
    assert "malformed XML" in (items[-1].error or "")
    with pytest.raises(SourceFormatError):
        parse_xml(b"<a>&lol;</a>")


def test_written_xml_parses_back() -> None:
    """A written document has a declaration and the default namespace."""
    element = parse_xml(f'<XZCF xmlns="{NS}"><CF_ID>1</CF_ID></XZCF>'.encode())
    data = write_xml([element], root_tag=f"{{{NS}}}XZCF_LIST", nsmap={None: NS})
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert [i.value.findtext(f"{{{NS}}}CF_ID") for i in read_xml(io.BytesIO(data), record_path=(TAG,))] == ["1"]
