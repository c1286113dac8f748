"""The three built-in mappings written by hand in plain Python: the yardstick for the compiled ones.

Each does the same transformation as its mapping file (same fields, same codes, same errors
raised as exceptions), the way a developer would write it without the mapping language.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

BEIJING = dt.timezone(dt.timedelta(hours=8))
LOCAL_RESULT = {"1": "01", "E": "02", "A": "03", "B": "04", "C": "05", "6": "06", "7": "07", "8": "08", "F": "09"}
LABELS = {"01": "未发现问题", "02": "发现问题已责令改正", "03": "发现问题待后续处理",
          "04": "未按规定公示应当公示的信息", "05": "公示信息隐瞒真实情况弄虚作假",
          "06": "通过登记的住所（经营场所）无法联系", "07": "已关闭停业或正在组织清算",
          "08": "不配合检查情节严重", "09": "未发现开展本次抽查涉及的经营活动"}
LABEL_RESULT = {label: code for code, label in LABELS.items()} | {"发现问题经责令已改正": "02"}
FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
OPS = {"i": "upsert", "u": "upsert", "d": "delete"}
NS = "{urn:sd:zfjd:xzcf:1}"
SEPARATORS = re.compile("[,，、;]")


def _time(text: str) -> str:
    return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).isoformat()


def _date(text: str) -> str:
    parts = re.split(r"[-/年月日]", text.strip())
    return dt.datetime(int(parts[0]), int(parts[1]), int(parts[2]), tzinfo=BEIJING).isoformat()


def _half(text: str) -> str:
    return text.translate(FULLWIDTH).strip()


def _people(names: str, certs: str) -> list[dict[str, str]]:
    names_list = [n.strip() for n in SEPARATORS.split(_half(names)) if n.strip()]
    certs_list = [c.strip() for c in SEPARATORS.split(_half(certs)) if c.strip()]
    if len(names_list) != len(certs_list):
        raise ValueError("parallel lists differ in length")
    return [{"name": n, "cert_no": c} for n, c in zip(names_list, certs_list, strict=True)]


def internet_plus(row: dict[str, Any]) -> dict[str, Any]:
    """internet_plus.check_action by hand."""
    code = LOCAL_RESULT[_half(row["check_result"]).split("|")[0].strip()]
    return {
        "record_type": "inspection", "record_id": row["record_unique_identity"].strip(),
        "op": OPS[row.get("cd_operation", "u").strip().lower()], "version": int(row["cd_batch"]),
        "occurred_at": _time(row["check_date"]), "region_code": _half(row["area_number"]),
        "data": {
            "action_code": row["check_action_code"].strip(), "action_name": row["check_action_name"].strip(),
            "plan_id": row["plan_id"].strip(), "matter_code": _half(row["supervise_item_implement_code"]),
            "item_check_code": _half(row["supervise_item_check_icode"]),
            "implementing_org": {"name": row["implement_institution"].strip(),
                                 "code": _half(row["implement_institution_code"])},
            "subject": {"kind": _half(row["administrative_cp_na"]), "name": row["administrative_cp"].strip(),
                        "cert_type": _half(row["administrative_cp_ce_type"]),
                        "cert_no": _half(row["administrative_cp_ui_code"])},
            "registered_address": row["address_registered"].strip(),
            "operating_address": row["address_operating"].strip(),
            "form": _half(row["check_form"]), "category": row["check_type"].strip(), "mode": row["check_mode"].strip(),
            "result": {"code": code, "label": LABELS[code]},
            "inspected_at": _time(row["check_date"]),
            "inspectors": _people(row["check_personnel"], row["check_personnel_code"]),
            "submitted_at": _time(row["submitted_date"]), "submitted_by": row["submitted_personnel"].strip(),
        },
    }


def penalty(element: Any) -> dict[str, Any]:
    """enforcement_oversight.penalty by hand."""
    def text(name: str) -> str:
        return (element.findtext(NS + name) or "").strip()

    decided = _date(text("CF_JDRQ"))
    return {
        "record_type": "penalty", "record_id": text("CF_ID"), "op": OPS[text("CF_CZLX").lower()],
        "occurred_at": decided, "region_code": _half(text("CF_XZQH")),
        "data": {
            "decision_no": text("CF_WSH"),
            "implementing_org": {"name": text("CF_CFJG"), "code": _half(text("CF_CFJGDM"))},
            "subject": {"kind": "2", "name": text("CF_XDR_MC"), "cert_type": "001",
                        "cert_no": _half(text("CF_XDR_SHDM")), "legal_representative": text("CF_FRDB")},
            "violation_type": text("CF_WFXW"), "illegal_facts": text("CF_SY"), "legal_basis": text("CF_YJ"),
            "penalty_content": text("CF_NR"),
            "penalty_types": [p.strip() for p in SEPARATORS.split(_half(text("CF_CFLB"))) if p.strip()],
            "fine_amount": format((Decimal(text("CF_FKJE")) * 10000).normalize(), "f"),
            "decided_at": decided, "publish_until": text("CF_GSJZQ"),
        },
    }


def double_random(row: dict[str, str]) -> dict[str, Any]:
    """double_random.result by hand."""
    code = LABEL_RESULT[row["抽查结果"].strip()]
    when = _date(row["检查日期"])
    return {
        "record_type": "inspection", "record_id": row["抽查任务编号"].strip(), "op": "upsert",
        "occurred_at": when, "region_code": _half(row["行政区划"]),
        "data": {
            "action_code": row["抽查任务编号"].strip(), "plan_id": row["计划编号"].strip(),
            "matter_code": _half(row["抽查事项"]),
            "implementing_org": {"name": row["检查部门"].strip(), "code": _half(row["检查部门代码"])},
            "subject": {"kind": "2", "name": row["检查对象名称"].strip(), "cert_type": "001",
                        "cert_no": _half(row["统一社会信用代码"])},
            "category": "双随机抽查", "result": {"code": code, "label": LABELS[code]}, "inspected_at": when,
            "inspectors": _people(row["执法人员"], row["执法证号"]), "public": row["是否公示"].strip() == "是",
        },
    }
