"""What a department's own export needs to map by configuration alone — and the silent failures
that must never come back: a repeated header resolved to the wrong column, a missing column
reported on every row, a record path ignored, several XML nodes read as the first one, an XPath
2.0 function loading fine and failing later, a one-sided ``matches`` pattern matching nothing."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import openpyxl
import orjson
import pytest

from mappings import MappedRecord, compile_text, map_stream
from mappings.exceptions import MappingDefinitionError, SourceFormatError
from mappings.formats import column_names
from schemas import Validator


def _mapping(fmt: str, fields: str, source: str = "", record_type: str = "inspection") -> Any:
    text = f'[mapping]\nname = "t.onboarding"\nrecord_type = "{record_type}"\nformat = "{fmt}"\n'
    if source:
        text += f"\n[source]\n{source}\n"
    return compile_text(text + f"\n[fields]\n{fields}\n", source="t.toml")


def _mapped(mapping: Any, data: bytes) -> list[MappedRecord]:
    return list(map_stream(mapping, None, io.BytesIO(data)))


# ---- headers ----------------------------------------------------------------------------------------------


def test_a_two_row_header_names_each_column_by_its_group() -> None:
    """Blank upper cells inherit from the left (merged cells); a repeated name gets #1, #2…"""
    rows = [["许可编号", "被许可人", "", "许可机关", ""], ["", "名称", "统一社会信用代码", "名称", "统一社会信用代码"]]
    assert column_names(rows, "/") == ["许可编号", "被许可人/名称", "被许可人/统一社会信用代码", "许可机关/名称",
                                       "许可机关/统一社会信用代码"]
    assert column_names([["名称", "代码", "名称"]], "/") == ["名称#1", "代码", "名称#2"]


def test_a_repeated_header_read_by_its_plain_name_refuses_the_file() -> None:
    """The licensee must never silently become the approving office: the file is refused, naming the column."""
    mapping = _mapping("csv", 'record_id = "编号"\n"data.subject.name" = "名称"')
    with pytest.raises(SourceFormatError, match="'名称' 2 times") as caught:
        _mapped(mapping, "编号,名称,名称\nA,甲公司,乙局\n".encode())
    assert "'名称#1' or '名称#2'" in str(caught.value)
    by_position = _mapping("csv", 'record_id = "编号"\n"data.subject.name" = "名称#1"')
    (row,) = _mapped(by_position, "编号,名称,名称\nA,甲公司,乙局\n".encode())
    assert row.record is not None and row.record["data"]["subject"]["name"] == "甲公司"


def test_a_mapped_column_missing_from_the_header_is_one_error_for_the_file() -> None:
    mapping = _mapping("csv", 'record_id = "编号"\n"data.subject.cert_no" = "统一社会信用代码"')
    with pytest.raises(SourceFormatError, match="'统一社会信用代码' is not in the header; the header has: 编号, 名称"):
        _mapped(mapping, "编号,名称\nA,甲\nB,乙\n".encode())


def test_csv_title_rows_and_a_two_row_header() -> None:
    mapping = _mapping("csv", 'record_id = "许可编号"\n"data.subject.name" = "被许可人/名称"\n'
                              '"data.implementing_org.name" = "许可机关/名称"', "skip_rows = 1\nheader_rows = 2")
    data = "行政许可公示\n许可编号,被许可人,,许可机关\n,名称,代码,名称\nXK1,甲公司,91,乙局\n".encode("gb18030")
    (row,) = _mapped(mapping, data)
    assert row.record is not None
    assert row.record["data"] == {"subject": {"name": "甲公司"}, "implementing_org": {"name": "乙局"}}
    assert row.where == "line 4"


def test_a_workbook_given_as_csv_is_refused_as_what_it_is() -> None:
    with pytest.raises(SourceFormatError, match=r"a ZIP archive \(an .xlsx workbook\?\), not CSV"):
        _mapped(_mapping("csv", 'record_id = "a"'), b"PK\x03\x04rest of a workbook")


# ---- where the records are -------------------------------------------------------------------------------

PAGE = {"code": 0, "msg": "成功", "data": {"total": 2, "pageNo": 1, "list": [{"id": "A"}, {"id": "B"}]}}


def test_a_json_record_path_and_its_envelope_check() -> None:
    mapping = _mapping("json", 'record_id = "id"', 'record = "data.list"\nenvelope = { path = "code", equals = 0, '
                                                   'message = "msg" }')
    assert [r.record_id for r in _mapped(mapping, orjson.dumps(PAGE))] == ["A", "B"]
    lines = orjson.dumps(PAGE) + b"\n" + orjson.dumps(PAGE)  # NDJSON: one page a line
    assert [r.record_id for r in _mapped(mapping, lines)] == ["A", "B", "A", "B"]
    failed = {"code": 500, "msg": "数据库连接超时", "data": None}
    with pytest.raises(SourceFormatError, match="code = 500, msg: 数据库连接超时"):
        _mapped(mapping, orjson.dumps(failed))


def test_a_record_path_that_holds_no_list_refuses_the_document() -> None:
    mapping = _mapping("json", 'record_id = "id"', 'record = "data.rows"')
    with pytest.raises(SourceFormatError, match=r"'data.rows' .*holds no list of records \(found nothing\)"):
        _mapped(mapping, orjson.dumps(PAGE))


def test_a_source_key_of_another_format_is_refused_with_its_line() -> None:
    with pytest.raises(MappingDefinitionError, match="delimiter does not apply to format json") as caught:
        _mapping("json", 'record_id = "id"', 'record = "data.list"\ndelimiter = ";"')
    assert caught.value.line == 8


def test_an_xml_record_path_names_the_records_at_any_depth() -> None:
    mapping = _mapping("xml", 'record_id = "ID"', 'record = "Body/Items/Item"')
    xml = (b"<Root><Body><Items><Item><ID>1</ID></Item><Item><ID>2</ID></Item></Items></Body>"
           b"<Archive><Item><ID>old</ID></Item></Archive></Root>")
    assert [r.record_id for r in _mapped(mapping, xml)] == ["1", "2"]


# ---- lists ----------------------------------------------------------------------------------------------

INSPECTION_XML = """<JCXX><JCBH>JC-1</JCBH>
  <JCRY XM="张伟" ZH="3701000001"/><JCRY XM="李娜" ZH="3701000002"/>
  <YH><MS>灭火器过期</MS><DJ>一般</DJ><ZG><QX>2024年03月20日</QX></ZG></YH>
  <YH><MS>疏散通道堵塞</MS><DJ>重大</DJ><ZG><QX>2024年03月10日</QX></ZG></YH>
</JCXX>"""


def test_repeated_elements_map_to_a_list_of_objects_nested_at_any_depth() -> None:
    fields = '''record_id = "JCBH"
"data.inspectors" = { each = "JCRY", fields = { name = "string(@XM)", cert_no = "string(@ZH)" } }
"data.findings" = { each = "YH", fields = { description = "MS", level = "DJ", "rectification.deadline" = \
{ from = "ZG/QX", as = "date" } } }
"data.levels" = { each = "YH/DJ" }'''
    (row,) = _mapped(_mapping("xml", fields, 'record = "JCXX"'), INSPECTION_XML.encode())
    assert row.verdict.ok and row.record is not None
    data = row.record["data"]
    assert data["inspectors"] == [{"name": "张伟", "cert_no": "3701000001"}, {"name": "李娜", "cert_no": "3701000002"}]
    assert data["findings"][1] == {"description": "疏散通道堵塞", "level": "重大",
                                   "rectification": {"deadline": "2024-03-10"}}
    assert data["levels"] == ["一般", "重大"]


def test_an_items_error_is_reported_at_its_place_in_the_list() -> None:
    fields = ('record_id = "JCBH"\n'
              '"data.findings" = { each = "YH", fields = { deadline = { from = "ZG/QX", as = "date" } } }')
    bad = INSPECTION_XML.replace("2024年03月10日", "2024年02月30日")
    (row,) = _mapped(_mapping("xml", fields, 'record = "JCXX"'), bad.encode())
    (problem,) = row.verdict.errors
    assert problem.path == "/data/findings/1/deadline" and problem.code == "mapping"


def test_json_list_items_map_by_their_own_rules() -> None:
    mapping = _mapping("json", 'record_id = "id"\n"data.inspectors" = { each = "people", fields = { name = "n" } }')
    (row,) = _mapped(mapping, orjson.dumps([{"id": "A", "people": [{"n": "张伟"}, {"n": "李娜"}]}]))
    assert row.record is not None and row.record["data"]["inspectors"] == [{"name": "张伟"}, {"name": "李娜"}]
    (bad,) = _mapped(mapping, orjson.dumps([{"id": "A", "people": ["张伟"]}]))
    assert [(e.path, e.code) for e in bad.verdict.errors] == [("/data/inspectors/0", "not_object")]


def test_several_nodes_where_one_value_is_expected_is_an_error_naming_the_rule() -> None:
    """Never the first <JCRY> silently."""
    (row,) = _mapped(_mapping("xml", 'record_id = "JCBH"\n"data.inspectors" = "JCRY/@XM"', 'record = "JCXX"'),
                     INSPECTION_XML.encode())
    (problem,) = row.verdict.errors
    assert problem.path == "/data/inspectors" and "selects 2 nodes where one value is expected" in problem.message
    (simple,) = _mapped(_mapping("xml", 'record_id = "JCBH"\n"data.x" = "YH"', 'record = "JCXX"'),
                        INSPECTION_XML.encode())
    assert "selects 2 nodes" in simple.verdict.errors[0].message


def test_an_xpath_2_function_is_refused_when_the_mapping_loads() -> None:
    with pytest.raises(MappingDefinitionError, match=r"string-join\(\) is not an XPath 1.0 function") as caught:
        _mapping("xml", 'record_id = "JCBH"\n"data.names" = "string-join(JCRY/@XM, \'、\')"', 'record = "JCXX"')
    assert caught.value.line == 11 and "[data.names]" in str(caught.value)
    _mapping("xml", 'record_id = "concat(JCBH, \'-\', \'string-join(x)\')"', 'record = "JCXX"')  # in a literal: fine


# ---- conversions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("epoch", "value", "as_", "expected"), [
    ("ms", "1709568000000", "datetime", "2024-03-05T00:00:00+08:00"),
    ("s", "1709568000", "datetime", "2024-03-05T00:00:00+08:00"),
    ("excel", "45356", "date", "2024-03-05"),
    ("excel", "45356.5", "datetime", "2024-03-05T12:00:00+08:00"),
])
def test_epoch_seconds_milliseconds_and_excel_serials(epoch: str, value: str, as_: str, expected: str) -> None:
    mapping = _mapping("json", f'record_id = "id"\noccurred_at = {{ from = "t", as = "{as_}", epoch = "{epoch}" }}')
    (row,) = _mapped(mapping, orjson.dumps([{"id": "A", "t": value}]))
    assert row.record is not None and row.record["occurred_at"] == expected


def test_matches_is_a_full_match_and_a_one_sided_anchor_is_refused() -> None:
    fields = 'record_id = "id"\n"data.category" = {{ from = "kind", when = {{ path = "year", matches = "{}" }} }}'
    full = _mapping("json", fields.format("[0-9]{4}"))
    rows = _mapped(full, orjson.dumps([{"id": "A", "year": "2024", "kind": "k"},
                                       {"id": "B", "year": "2024-03", "kind": "k"}]))
    assert [("category" in (r.record or {}).get("data", {})) for r in rows] == [True, False]
    search = _mapping("json", fields.format("[0-9]{4}.*"))
    assert "category" in (_mapped(search, orjson.dumps([{"id": "B", "year": "2024-03", "kind": "k"}]))[0].record
                          or {}).get("data", {})
    with pytest.raises(MappingDefinitionError, match="matches tests the whole value"):
        _mapping("json", fields.format("^[0-9]{4}"))


# ---- spreadsheets -----------------------------------------------------------------------------------------


def _workbook(rows: list[list[Any]], sheet: str = "许可信息") -> bytes:
    book = openpyxl.Workbook()
    book.active.title = sheet
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


LICENCE_SHEET = [
    ["市场监管局行政许可公示（2024年3月）"],
    ["许可编号", "被许可人", None, "许可机关", None, "许可日期", "有效期至"],
    [None, "名称", "统一社会信用代码", "名称", "统一社会信用代码", None, None],
    ["XK001", "济南鲁达食品有限公司", "91370102CXCY5NUM1A", "济南市市场监督管理局", "11370100004188001A",
     dt.date(2024, 3, 5), 46086],
    [None] * 7,
    ["XK002", "青岛海之味餐饮有限公司", "91370202MA3C4BQX2N", "青岛市市场监督管理局", "113702000041880016",
     dt.datetime(2024, 3, 6, 9, 30), 46087],
]


def test_an_xlsx_sheet_with_a_title_row_a_two_row_header_and_date_cells() -> None:
    fields = '''record_id = "许可编号"
"data.subject.name" = "被许可人/名称"
"data.subject.cert_no" = "被许可人/统一社会信用代码"
"data.implementing_org.name" = "许可机关/名称"
occurred_at = { from = "许可日期", as = "datetime" }
"data.valid_to" = { from = "有效期至", as = "date", epoch = "excel" }'''
    mapping = _mapping("xlsx", fields, 'sheet = "许可信息"\nskip_rows = 1\nheader_rows = 2')
    rows = _mapped(mapping, _workbook(LICENCE_SHEET))
    assert [r.where for r in rows] == ["row 4", "row 6"]
    first, second = (r.record or {} for r in rows)
    assert first["data"]["subject"] == {"name": "济南鲁达食品有限公司", "cert_no": "91370102CXCY5NUM1A"}
    assert first["data"]["implementing_org"] == {"name": "济南市市场监督管理局"}
    assert first["occurred_at"] == "2024-03-05T00:00:00+08:00" and first["data"]["valid_to"] == "2026-03-05"
    assert second["occurred_at"] == "2024-03-06T09:30:00+08:00"


def test_a_workbook_refuses_what_it_cannot_read() -> None:
    by_position = _mapping("xlsx", 'record_id = "许可编号"', "sheet = 2")
    with pytest.raises(SourceFormatError, match="the workbook has 1 sheets, not a sheet 2"):
        _mapped(by_position, _workbook(LICENCE_SHEET))
    with pytest.raises(SourceFormatError, match="no sheet '台账' \\(sheets: 许可信息\\)"):
        _mapped(_mapping("xlsx", 'record_id = "许可编号"', 'sheet = "台账"'), _workbook(LICENCE_SHEET))
    with pytest.raises(SourceFormatError, match="not a readable workbook"):
        _mapped(_mapping("xlsx", 'record_id = "a"'), b"a,b\n1,2\n")
    flat = _mapping("xlsx", 'record_id = "许可编号"\n"data.subject.name" = "名称"', "skip_rows = 1\nheader_rows = 2")
    with pytest.raises(SourceFormatError, match="'名称' is not in the header"):
        _mapped(flat, _workbook(LICENCE_SHEET))


def test_validation_runs_on_spreadsheet_rows_like_any_other() -> None:
    mapping = _mapping("xlsx", 'record_id = "许可编号"', "skip_rows = 1\nheader_rows = 2")
    (first, _) = map_stream(mapping, Validator(), io.BytesIO(_workbook(LICENCE_SHEET)))
    assert not first.verdict.ok and {e.code for e in first.verdict.errors} >= {"required"}


def test_a_workbook_that_unpacks_too_far_is_refused_before_it_is_unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small upload must not become gigabytes of cells: the archive's sizes are checked first."""
    monkeypatch.setattr("mappings.formats.MAX_UNPACKED", 10_000)
    mapping = _mapping("xlsx", 'record_id = "许可编号"', "skip_rows = 1\nheader_rows = 2")
    with pytest.raises(SourceFormatError, match=r"the workbook unpacks to [0-9,]+ bytes, over 10,000"):
        _mapped(mapping, _workbook(LICENCE_SHEET))


def test_trailing_blank_header_columns_inherit_nothing_and_their_values_are_not_lost() -> None:
    """A blank upper cell takes its left neighbour's name only above a named column: columns blank
    all the way down stay unnamed, and a value under them is that row's error, never dropped."""
    assert column_names([["许可状态", "", ""], ["", "", ""]], "/") == ["许可状态", "", ""]
    mapping = _mapping("csv", 'record_id = "编号"')
    good, bad = _mapped(mapping, "编号,\nA,\nB,遗漏的值\n".encode())
    assert good.verdict.ok
    assert bad.record is None and "column 2, which has no header" in bad.verdict.errors[0].message
