"""Validation issues as data: ``{path, code, message}`` with a stable code and a zh/en message.

The codes are part of the external contract; the messages are for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["CODES", "Issue", "issue", "pointer", "points_to"]

# code -> (Chinese template, English template); templates see ``field`` and the extra arguments.
CODES: Final[dict[str, tuple[str, str]]] = {
    "required": ("缺少必填字段 {field}", "required field {field} is missing"),
    "type": ("字段 {field} 的类型应为 {expected}", "field {field} must be of type {expected}"),
    "pattern": ("字段 {field} 的格式不正确", "field {field} does not have the required format"),
    "enum": ("字段 {field} 的取值 {value} 不在代码表中", "field {field}: {value} is not one of the allowed codes"),
    "format": ("字段 {field} 不是有效的{expected}", "field {field} is not a valid {expected}"),
    "length": ("字段 {field} 的长度应{bound_zh}个字符", "field {field} must be {bound} characters long"),
    "items_count": ("字段 {field} 应有{bound_zh}个条目", "field {field} must have {bound} items"),
    "unique": ("字段 {field} 含有重复条目", "field {field} contains duplicate items"),
    "range": ("字段 {field} 的数值应{bound_zh}", "field {field} must be {bound}"),
    "unknown_field": ("不允许的字段 {field}", "field {field} is not allowed"),
    "invalid": ("字段 {field} 不符合标准接口", "field {field} does not conform to the standard interface"),
    "not_object": ("记录必须是 JSON 对象", "a record must be a JSON object"),
    "unknown_type": ("未知的记录类型 {value}", "unknown record type {value}"),
    "uscc_checksum": (
        "统一社会信用代码 {value} 校验位错误",
        "unified social credit code {value} fails its check character",
    ),
    "id_checksum": ("居民身份证号码校验位错误", "resident identity card number fails its check digit (or is not 17 "
                    "digits and a check character)"),
    "id_birth_date": ("居民身份证号码中的出生日期无效", "the birth date in the resident identity card number is not "
                      "a real date, or is in the future"),
    "id_region": ("居民身份证号码的地址码不存在", "the birthplace code of the resident identity card number never "
                  "existed in GB/T 2260"),
    "region_unknown": ("行政区划代码 {value} 不存在", "region code {value} does not exist in GB/T 2260"),
    "region_historical": (
        "行政区划代码 {value} 已撤销（{name}）",
        "region code {value} is no longer in force ({name})",
    ),
    "time_order": ("{field} 不得早于 {earlier}", "{field} must not be earlier than {earlier}"),
    "time_future": ("{field} 晚于当前时间一天以上", "{field} is more than one day in the future"),
    "duplicate_inspector": (
        "检查人员执法证号 {value} 重复",
        "inspector certificate number {value} appears more than once",
    ),
    "not_permitted": (
        "连接器无权报送 {value} 类型的记录",
        "the connector may not produce records of type {value}",
    ),
    "version_conflict": (
        "版本 {value} 已存在且内容不同", "version {value} is already stored with different content",
    ),
    # the details below are bilingual already
    "malformed": ("无法解析 / cannot be parsed: {detail}", ""),
    "mapping": ("映射失败 / mapping failed: {detail}", ""),
}


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem of one record: where (a JSON pointer), what (a stable code) and a zh/en message."""

    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The issue as the JSON object of the HTTP API and ``--json`` output."""
        return {"path": self.path, "code": self.code, "message": self.message}


def pointer(parts: tuple[Any, ...] | list[Any]) -> str:
    """A JSON pointer (RFC 6901) for the path ``parts``."""
    if not parts:
        return ""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def points_to(value: Any, pointer: str) -> bool:
    """Whether the JSON pointer (RFC 6901) ``pointer`` names something in ``value``."""
    node = value
    for raw in pointer[1:].split("/") if pointer else ():
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def issue(path: str, code: str, **args: Any) -> Issue:
    """Build an issue with its bilingual message; ``field`` defaults to the path's last step."""
    zh, en = CODES[code]
    args.setdefault("field", path.rsplit("/", 1)[-1] or "(record)")
    return Issue(path, code, f"{zh.format(**args)} / {en.format(**args)}" if en else zh.format(**args))
