"""Draft a mapping from a sample export: its fields with example values, the standard field each
one plainly is (``统一社会信用代码`` → ``data.subject.cert_no``), written as a commented mapping
file for the team to finish and test. Nothing is guessed where a name does not make it clear:
those fields are listed as comments.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import tomlkit
from lxml import etree

from mappings.compiler import dotted_value
from mappings.exceptions import SourceFormatError
from mappings.formats import MAX_RECORD_BYTES, parse_xml, read_csv, read_json, read_sheet

__all__ = ["DraftField", "SampleShape", "draft_mapping", "read_sample"]

# normalised source names (lower case, no spaces, _ or -) → standard target, by record type where it differs
_NAMES: dict[str, str] = {
    "统一社会信用代码": "data.subject.cert_no", "社会信用代码": "data.subject.cert_no",
    "信用代码": "data.subject.cert_no",
    "creditcode": "data.subject.cert_no", "uscc": "data.subject.cert_no", "tyshxydm": "data.subject.cert_no",
    "企业名称": "data.subject.name", "单位名称": "data.subject.name", "检查对象名称": "data.subject.name",
    "被检查单位": "data.subject.name", "当事人名称": "data.subject.name", "行政相对人名称": "data.subject.name",
    "被许可人名称": "data.subject.name", "taxpayername": "data.subject.name", "entname": "data.subject.name",
    "companyname": "data.subject.name",
    "行政区划": "region_code", "行政区划代码": "region_code", "区划代码": "region_code", "areacode": "region_code",
    "regioncode": "region_code", "xzqh": "region_code", "所在县区": "region_code", "县区": "region_code",
    "法定代表人": "data.subject.representative.name", "法人代表": "data.subject.representative.name",
    "legalperson": "data.subject.representative.name", "legalrepresentative": "data.subject.representative.name",
    "法定代表人证件号码": "data.subject.representative.cert_no",
    "法定代表人身份证号": "data.subject.representative.cert_no",
    "legalpersonidno": "data.subject.representative.cert_no", "legalidno": "data.subject.representative.cert_no",
    "事项编码": "data.matter_code", "监管事项编码": "data.matter_code", "mattercode": "data.matter_code",
    "检查日期": "data.inspected_at", "检查时间": "data.inspected_at", "checktime": "data.inspected_at",
    "inspecttime": "data.inspected_at", "检查结果": "data.result.label",
    "检查机关": "data.implementing_org.name", "检查部门": "data.implementing_org.name",
    "实施机关": "data.implementing_org.name", "orgname": "data.implementing_org.name",
    "许可编号": "data.license_no", "许可证编号": "data.license_no", "证书编号": "data.license_no",
    "licenseno": "data.license_no", "许可证名称": "data.license_name", "许可名称": "data.license_name",
    "许可机关": "data.issuing_org.name", "发证机关": "data.issuing_org.name", "许可内容": "data.content",
    "有效期自": "data.valid_from", "有效期起": "data.valid_from", "有效期至": "data.valid_to",
    "有效期止": "data.valid_to", "许可状态": "data.status",
    "处罚决定书文号": "data.decision_no", "决定书文号": "data.decision_no", "罚款金额": "data.fine_amount",
    "处罚决定日期": "data.decided_at", "决定日期": "data.decided_at", "decidetime": "data.decided_at",
    "decidedate": "data.decided_at", "处罚机关": "data.implementing_org.name", "decisionno": "data.decision_no",
    "检查部门代码": "data.implementing_org.code", "检查机关代码": "data.implementing_org.code",
    "实施机关代码": "data.implementing_org.code", "是否公示": "data.public",
    # the field names of the 双公示 exchange standard
    "cf_xdr_mc": "data.subject.name", "xk_xdr_mc": "data.subject.name", "cf_xdr_shdm": "data.subject.cert_no",
    "xk_xdr_shdm": "data.subject.cert_no", "cf_wsh": "data.decision_no", "cf_jdrq": "data.decided_at",
    "cf_frdb": "data.subject.legal_representative", "xk_frdb": "data.subject.legal_representative",
    "xk_xkbh": "data.license_no", "xk_xkzs": "data.license_name", "xk_yxqz": "data.valid_from",
    "xk_yxqzi": "data.valid_to", "xk_xkjg": "data.issuing_org.name", "cf_cfjg": "data.implementing_org.name",
    "cf_cfjgdm": "data.implementing_org.code", "xk_xkjgdm": "data.issuing_org.code",
}
_INSPECTOR_NAMES = ("执法人员", "检查人员", "执法人员姓名")
_INSPECTOR_CERTS = ("执法证号", "执法证件号", "执法证件号码")
# the parts of a two-row header: a group names whose fields follow
_GROUPS = {"被许可人": "data.subject", "当事人": "data.subject", "检查对象": "data.subject",
           "行政相对人": "data.subject", "被检查单位": "data.subject", "许可机关": "data.issuing_org",
           "发证机关": "data.issuing_org", "检查机关": "data.implementing_org", "实施机关": "data.implementing_org",
           "法定代表人": "data.subject.representative"}
_LEAVES = {"名称": "name", "统一社会信用代码": "cert_no", "信用代码": "cert_no", "姓名": "name",
           "证件号码": "cert_no", "身份证号": "cert_no"}
_DATES = ("valid_from", "valid_to", "deadline", "rectified_on", "status_changed_on")
_TIMES = ("inspected_at", "decided_at", "submitted_at", "closed_at")
_DATE_TEXT = re.compile(r"\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}")


@dataclass(frozen=True)
class DraftField:
    """One field of the sample: where it is, an example value, and the standard field it plainly is."""

    path: str
    example: Any
    target: str | None = None
    rule: dict[str, Any] | None = None


@dataclass(frozen=True)
class SampleShape:
    """What the sample is: its format, where its records are, its fields, its first record."""

    format: str
    source: dict[str, Any]
    fields: list[DraftField]
    first: Any


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _target(path: str) -> str | None:
    """The standard field a source field plainly is: by its group and name under a two-row header
    (``许可机关/名称``), else by its own name (a key, a column, an element or attribute)."""
    group, _, leaf = path.rpartition("/")
    group = group.rsplit("/", 1)[-1]
    if group in _GROUPS and leaf in _LEAVES:
        base, part = _GROUPS[group], _LEAVES[leaf]
        return f"{base}.{'code' if part == 'cert_no' and 'org' in base else part}"
    name = re.split(r"[./@:]", path.removesuffix(")"))[-1]
    return _NAMES.get(name) or _NAMES.get(_normal(name))


def _time_rule(path: str, kind: str, text: str) -> dict[str, Any]:
    epochs = ((r"\d{13}", "ms"), (r"\d{10}", "s"), (r"\d{5}(\.\d+)?", "excel"))
    epoch = next((name for pattern, name in epochs if re.fullmatch(pattern, text)), None)
    return {"from": path, "as": kind, **({"epoch": epoch} if epoch else {})}


def _rule(path: str, target: str, example: Any) -> dict[str, Any]:
    leaf, text = target.rsplit(".", 1)[-1], str(example)
    if leaf in _TIMES or leaf in _DATES:
        return _time_rule(path, "date" if leaf in _DATES else "datetime", text)
    special: dict[str, dict[str, Any]] = {
        "fine_amount": {"as": "decimal"}, "public": {"as": "bool"}, "cert_no": {"halfwidth": True},
        "code": {"halfwidth": True}, "matter_code": {"halfwidth": True}}
    if target == "region_code" and not re.fullmatch(r"\d{6}", text):
        return {"from": path, "region_name": {}}
    return {"from": path, **special.get(leaf, {})}


# ---- reading the sample --------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _flatten(sub, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _records_path(document: Any, prefix: str = "") -> str | None:
    """The dotted path of the first list of objects in a JSON document (``data.list``)."""
    if isinstance(document, dict):
        for key, value in document.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return path
            found = _records_path(value, path)
            if found:
                return found
    return None


def _json_shape(stream: IO[bytes]) -> SampleShape:
    first = next(iter(read_json(stream)), None)
    if first is None or first.error is not None:
        raise SourceFormatError(f"样例不是 JSON / the sample is not JSON: {first.error if first else 'empty'}")
    document, source = first.value, dict[str, Any]()
    if isinstance(document, list):
        rows = document
    else:
        path = _records_path(document)
        rows = dotted_value(document, path) if path else [document]
        if path:
            source["record"] = path
        code = document.get("code") if isinstance(document, dict) else None
        if path and code is not None:
            source["envelope"] = {"path": "code", "equals": code,
                                  **({"message": "msg"} if "msg" in document else {})}
    record = rows[0] if rows else {}
    fields = []
    for path, value in _flatten(record):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            fields.append(DraftField(path, value[0], None, {"each": path, "fields": {k: k for k in value[0]}}))
        else:
            fields.append(DraftField(path, value))
    return SampleShape("json", source, fields, record)


def _xml_shape(stream: IO[bytes]) -> SampleShape:
    data = stream.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise SourceFormatError(f"样例过大 / a sample XML of over {MAX_RECORD_BYTES} bytes: give a smaller one")
    root = parse_xml(data)
    counts = Counter(e.tag for e in root.iter() if e is not root and len(e))
    if not counts:
        raise SourceFormatError("样例中没有记录元素 / no repeated element with children found in the sample")
    tag = counts.most_common(1)[0][0]
    record = next(e for e in root.iter(tag))
    local = etree.QName(tag).localname
    namespace = etree.QName(tag).namespace
    prefix = "x:" if namespace else ""
    source: dict[str, Any] = {"record": prefix + local}
    if namespace:
        source["namespaces"] = {"x": namespace}
    fields = [DraftField(f"string(@{name})", value) for name, value in record.attrib.items()]
    seen: Counter[str] = Counter(etree.QName(child).localname for child in record if isinstance(child.tag, str))
    for name, count in seen.items():
        child = record.find(f"{{{namespace}}}{name}" if namespace else name)
        assert child is not None
        inner = {**{a: f"string(@{a})" for a in child.attrib},
                 **{etree.QName(c).localname: prefix + etree.QName(c).localname for c in child
                    if isinstance(c.tag, str)}}
        if count > 1:  # a list: each of them an object of its own fields
            fields.append(DraftField(prefix + name, etree.tostring(child, encoding="unicode")[:80], None,
                                     {"each": prefix + name, "fields": inner}))
        elif inner:  # one element holding fields: each read through it
            for key, path in inner.items():
                value = child.get(key) if path.startswith("string(@") else child.findtext(
                    f"{{{namespace}}}{key}" if namespace else key)
                through = f"string({prefix}{name}/@{key})" if path.startswith("string(@") else f"{prefix}{name}/{path}"
                fields.append(DraftField(through, value))
        else:
            fields.append(DraftField(prefix + name, child.text))
    return SampleShape("xml", source, fields, etree.tostring(record, encoding="unicode"))


def _table_shape(fmt: str, stream: IO[bytes], skip_rows: int, header_rows: int) -> SampleShape:
    header: list[str] = []

    def keep(found: list[str]) -> None:
        header.extend(found)

    if fmt == "xlsx":
        items = read_sheet(stream, skip_rows=skip_rows, header_rows=header_rows, check_header=keep)
    else:
        items = read_csv(stream, encodings=["utf-8", "gb18030"], skip_rows=skip_rows, header_rows=header_rows,
                         check_header=keep)
    first = next((i for i in items if i.error is None), None)
    row = first.value if first is not None else {}
    source = {k: v for k, v in (("skip_rows", skip_rows), ("header_rows", header_rows)) if v != (0 if k == "skip_rows"
                                                                                                  else 1)}
    return SampleShape(fmt, source, [DraftField(name, row.get(name, "")) for name in header if name], row)


def read_sample(fmt: str, stream: IO[bytes], *, skip_rows: int = 0, header_rows: int = 1) -> SampleShape:
    """The shape of a sample export in ``fmt`` (``json``, ``xml``, ``csv``, ``xlsx``), its fields guessed."""
    if fmt == "json":
        shape = _json_shape(stream)
    elif fmt == "xml":
        shape = _xml_shape(stream)
    elif fmt in ("csv", "xlsx"):
        shape = _table_shape(fmt, stream, skip_rows, header_rows)
    else:
        raise SourceFormatError(f"未知格式 / unknown format {fmt!r} (json, xml, csv, xlsx)")
    guessed = []
    taken: set[str] = set()
    for field in shape.fields:
        target = field.target or _target(field.path)
        if field.rule is None and target and target not in taken:
            taken.add(target)
            guessed.append(DraftField(field.path, field.example, target, _rule(field.path, target, field.example)))
        else:
            guessed.append(field)
    return SampleShape(shape.format, shape.source, guessed, shape.first)


# ---- writing the draft -----------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _inline(value: dict[str, Any]) -> Any:
    table = tomlkit.inline_table()
    for key, item in value.items():
        table[key] = _inline(item) if isinstance(item, dict) else item
    return table


def draft_mapping(shape: SampleShape, *, name: str, record_type: str, sample: str) -> str:
    """A commented mapping file for ``shape``: guessed rules written, the other fields as comments."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Draft mapping of {sample}: check every rule, map what is commented out, then"))
    doc.add(tomlkit.comment(f"run `supex mapping test {name}.toml` and `supex map --mapping {name}.toml --validate`."))
    header = tomlkit.table()
    header.update({"name": name, "title": f"{sample} (draft)", "record_type": record_type, "format": shape.format})
    doc.add("mapping", header)
    if shape.source:
        source = tomlkit.table()
        for key, value in shape.source.items():
            source[key] = _inline(value) if isinstance(value, dict) else value
        doc.add("source", source)
    fields = tomlkit.table()
    fields.add("record_id", "?")
    fields["record_id"].comment("the field that identifies a record: set it")
    fields.add("op", _inline({"const": "upsert"}))
    occurred = next((f for f in shape.fields if f.target and f.target.rsplit(".", 1)[-1] in _TIMES), None)
    if occurred is not None and occurred.rule is not None:
        fields.add("occurred_at", _inline(occurred.rule))
    else:
        fields.add(tomlkit.comment('occurred_at = { from = "?", as = "datetime" }  # when the event took place'))
    names = {f.path for f in shape.fields}
    people = next((n for n in _INSPECTOR_NAMES if n in names), None)
    certs = next((n for n in _INSPECTOR_CERTS if n in names), None)
    if people and certs and shape.format in ("csv", "xlsx"):
        fields.add("data.inspectors", _inline({"zip": {"name": people, "cert_no": certs},
                                               "split": ["、", ",", "，", ";"]}))
        fields["data.inspectors"].comment("names and certificate numbers side by side")
    for field in shape.fields:
        if field.path in (people, certs) and "data.inspectors" in fields:
            continue
        if field.target and field.rule is not None:
            fields.add(field.target, _inline(field.rule) if set(field.rule) != {"from"} else field.path)
            fields[field.target].comment(f"e.g. {_shown(field.example)}")
        elif field.rule is not None:  # a list: its items' fields still to be mapped
            fields.add(tomlkit.comment(f'"data.?" = {tomlkit.dumps({"r": _inline(field.rule)})[4:].strip()}'
                                       f"  # a list, e.g. {_shown(field.example)}"))
        else:
            fields.add(tomlkit.comment(f'"data.?" = {tomlkit.dumps({"r": field.path})[4:].strip()}'
                                       f"  # e.g. {_shown(field.example)}"))
    doc.add("fields", fields)
    example = tomlkit.aot()
    first = tomlkit.table()
    first["name"] = f"the first record of {sample}"
    first["source"] = shape.first if shape.format == "xml" else _inline(
        {k: (str(v) if shape.format in ("csv", "xlsx") else v) for k, v in (shape.first or {}).items()})
    example.append(first)
    doc.add("example", example)
    text = tomlkit.dumps(doc)
    return text if isinstance(text, str) else str(text)
