"""Field masks: what of a value a consumer may see.

Each mask keeps a documented part of a text and replaces every other character with ``*``
(one for one, so that the form stays recognisable), except ``address``, which keeps the
province, city and district and ends in a fixed ``****``, so that the length of a street
address tells nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from policy.exceptions import PolicyDefinitionError

__all__ = ["COMPOUND_SURNAMES", "MASK_NAMES", "Mask", "compile_mask", "mask_address", "mask_name"]

Mask = Callable[[Any], Any]
MASK_NAMES = ("id_no", "phone", "name", "address", "keep:N:M", "clear")  # clear: lifts a default mask

# 复姓 of the 百家姓 and those common today: a name starting with one keeps both characters
COMPOUND_SURNAMES = frozenset((
    "欧阳", "太史", "端木", "上官", "司马", "东方", "独孤", "南宫", "万俟", "闻人", "夏侯", "诸葛", "尉迟", "公羊",
    "赫连", "澹台", "皇甫", "宗政", "濮阳", "公冶", "太叔", "申屠", "公孙", "慕容", "仲孙", "钟离", "长孙", "宇文",
    "司徒", "鲜于", "司空", "闾丘", "子车", "亓官", "司寇", "巫马", "公西", "颛孙", "壤驷", "公良", "漆雕", "乐正",
    "宰父", "谷梁", "拓跋", "夹谷", "轩辕", "令狐", "段干", "百里", "呼延", "东郭", "南门", "羊舌", "微生", "公户",
    "公玉", "公仪", "梁丘", "公仲", "公上", "公门", "公山", "公坚", "左丘", "公伯", "西门", "公祖", "第五", "公乘",
    "贯丘", "公皙", "南荣", "东里", "东宫", "仲长", "子书", "子桑", "即墨", "达奚", "褚师", "单于", "完颜", "淳于",
    "东门", "锺离",
))
_KEEP = re.compile(r"^keep:(\d{1,3}):(\d{1,3})$")
_ADDRESS = re.compile(
    r"^((?:[^省市区县]{2,8}?(?:省|自治区|特别行政区))?"
    r"(?:[^省市区县]{1,10}?(?:市|自治州|地区|盟))?"
    r"(?:[^省市区县]{1,10}?(?:自治县|自治旗|林区|特区|区|县|市|旗))?)"
)


def _keep(first: int, last: int) -> Mask:
    def mask(value: Any) -> Any:
        if value is None:
            return None
        text = str(value)
        if len(text) <= first + last:
            return "*" * len(text)
        return text[:first] + "*" * (len(text) - first - last) + (text[len(text) - last:] if last else "")

    return mask


def mask_name(value: Any) -> Any:
    """Keep the surname (two characters for a compound surname such as 欧阳 or 诸葛)."""
    if value is None:
        return None
    text = str(value).strip()
    keep = 2 if text[:2] in COMPOUND_SURNAMES and len(text) > 2 else 1
    return text[:keep] + "*" * (len(text) - keep)


def mask_address(value: Any) -> Any:
    """Keep the province, city and district (county) of an address; the rest becomes ``****``."""
    if value is None:
        return None
    text = str(value).strip()
    match = _ADDRESS.match(text)
    kept = match[1] if match else ""
    return kept + "****" if kept != text else text


_NAMED: dict[str, Mask] = {"id_no": _keep(6, 4), "phone": _keep(3, 4), "name": mask_name, "address": mask_address}


def compile_mask(spec: str) -> Mask:
    """The mask named by ``spec``: ``id_no``, ``phone``, ``name``, ``address`` or ``keep:N:M``."""
    if spec in _NAMED:
        return _NAMED[spec]
    match = _KEEP.match(spec)
    if match:
        return _keep(int(match[1]), int(match[2]))
    raise PolicyDefinitionError(f"未知的脱敏方式 / unknown mask {spec!r} (known: {', '.join(MASK_NAMES)})")
