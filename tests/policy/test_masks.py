"""The masks: what of an identifier, phone, name or address a consumer may see."""

from __future__ import annotations

import pytest

from policy import PolicyDefinitionError, compile_mask
from policy.masks import COMPOUND_SURNAMES


@pytest.mark.parametrize(("spec", "value", "shown"), [
    ("id_no", "370102199003071234", "370102********1234"),
    ("id_no", "37010219900307123X", "370102********123X"),
    ("phone", "13812345678", "138****5678"),
    ("phone", "0531-86012345", "053******2345"),
    ("name", "张伟", "张*"),
    ("name", "王小明", "王**"),
    ("name", "欧阳娜娜", "欧阳**"),
    ("name", "司马光", "司马*"),
    ("name", "诸葛亮", "诸葛*"),
    ("name", "上官婉儿", "上官**"),
    ("name", "欧阳", "欧*"),  # a two-character name is a surname and a given name
    ("address", "山东省济南市历下区泉城路100号", "山东省济南市历下区****"),
    ("address", "北京市朝阳区建国路1号院", "北京市朝阳区****"),
    ("address", "山东省青岛市即墨市鹤山路8号", "山东省青岛市即墨市****"),
    ("address", "内蒙古自治区呼和浩特市新城区中山路", "内蒙古自治区呼和浩特市新城区****"),
    ("address", "泉城路100号", "****"),
    ("keep:2:2", "ABCDEFGH", "AB****GH"),
    ("keep:0:4", "6222021234567890", "************7890"),
    ("keep:3:3", "ABC", "***"),
])
def test_masks(spec: str, value: str, shown: str) -> None:
    """Each mask keeps exactly its documented part."""
    assert compile_mask(spec)(value) == shown


def test_masks_leave_null_alone_and_mask_numbers_as_text() -> None:
    """A missing value stays missing; a number is masked as its digits."""
    assert compile_mask("phone")(None) is None
    assert compile_mask("keep:1:1")(12345) == "1***5"


def test_the_common_compound_surnames_are_known() -> None:
    """The four the issue names, and the rest of the usual list."""
    assert {"欧阳", "司马", "诸葛", "上官", "皇甫", "慕容", "令狐", "东方"} <= COMPOUND_SURNAMES


@pytest.mark.parametrize("spec", ["blur", "keep:1", "keep:a:b", "ID_NO", ""])
def test_an_unknown_mask_is_refused(spec: str) -> None:
    """A mask that is not one of the documented ones is a definition error naming it."""
    with pytest.raises(PolicyDefinitionError, match="unknown mask"):
        compile_mask(spec)
