"""The console's words in Chinese (the default) and English."""

from __future__ import annotations

LANGUAGES = ("zh", "en")

_WORDS: dict[str, tuple[str, str]] = {
    "title": ("交换日志审查台", "Exchange-log review console"),
    "login": ("审计员登录", "Auditor sign-in"),
    "token": ("审计令牌", "Auditor token"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "bad_token": ("令牌无效。", "The token is not valid."),
    "too_many": ("失败次数过多，请 {seconds} 秒后再试。", "Too many failed attempts: try again in {seconds} s."),
    "expired": ("表单已过期，请重试。", "The form has expired: please try again."),
    "overview": ("概览", "Overview"),
    "events": ("事件", "Events"),
    "trail": ("记录轨迹", "Record trail"),
    "problems": ("问题", "Problems"),
    "chain": ("日志链", "Log chain"),
    "chain_ok": ("日志链完整：已校验至第 {entries} 条（{at} 校验；此后的条目待下次校验）。",
                 "The chain is intact up to entry {entries} (verified {at}; later entries at the next check)."),
    "chain_broken": ("日志链被破坏：第 {seq} 条 — {reason}（{at}）",
                     "THE CHAIN IS BROKEN at entry {seq}: {reason} ({at})"),
    "chain_unknown": ("日志链尚未校验。", "The chain has not been verified yet."),
    "chain_running": ("正在校验日志链……", "Verifying the chain…"),
    "verify_now": ("立即校验", "Verify now"),
    "entries": ("日志条目", "Log entries"),
    "volume": ("每日数据量（按连接器）", "Daily volume by connector"),
    "no_volume": ("近期没有数据。", "Nothing in the period."),
    "filters": ("筛选", "Filters"),
    "search": ("查询", "Search"),
    "since": ("起（含）", "From"),
    "until": ("止（不含）", "Until"),
    "connector": ("连接器", "Connector"),
    "counterpart": ("对方", "Counterpart"),
    "record_type": ("记录类型", "Record type"),
    "record_id": ("记录编号", "Record id"),
    "source": ("来源连接器", "Source connector"),
    "event": ("事件", "Event"),
    "rule": ("规则", "Rule"),
    "purpose": ("用途", "Purpose"),
    "fields": ("共享字段", "Fields shared"),
    "masked": ("脱敏字段", "Fields masked"),
    "reason": ("说明", "Reason"),
    "at": ("时间", "Time"),
    "seq": ("序号", "Seq"),
    "version": ("版本", "Version"),
    "digest": ("摘要", "Digest"),
    "older": ("更早 →", "Older →"),
    "newest": ("← 最新", "← Newest"),
    "nothing": ("没有符合条件的事件。", "No event matches."),
    "open_trail": ("轨迹", "Trail"),
    "trail_of": ("记录 {record} 的轨迹", "Trail of record {record}"),
    "trail_hint": ("输入来源连接器与记录编号。", "Give the source connector and the record id."),
    "rejections": ("拒收", "Rejections"),
    "overdue": ("超时送达", "Overdue deliveries"),
    "dead_letters": ("死信", "Dead letters"),
    "delivery_failed": ("投递失败", "Failed deliveries"),
    "denials": ("按规则统计的拒绝共享", "Denials by rule"),
    "count": ("数量", "Count"),
    "consumer": ("接收方", "Consumer"),
    "attempts": ("尝试次数", "Attempts"),
    "last_error": ("最后错误", "Last error"),
    "metadata_only": ("本页只显示元数据，不显示任何数据内容。", "Metadata only: no payload value is ever shown."),
    "language": ("English", "中文"),
    "see_all": ("查看全部", "See all"),
}


def words(lang: str) -> dict[str, str]:
    """Every word of the console in ``lang`` (Chinese unless ``en``)."""
    index = 1 if lang == "en" else 0
    return {key: pair[index] for key, pair in _WORDS.items()}
