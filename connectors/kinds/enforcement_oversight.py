"""The administrative-enforcement oversight system (行政执法综合管理监督信息系统): 双公示-style XML."""

from connectors.kinds import ConnectorKind

KIND = ConnectorKind(
    name="enforcement_oversight",
    title="行政执法综合管理监督信息系统",
    description="Penalty decisions as 双公示-style XML (XZCF elements), in and out.",
    mapping="enforcement_oversight.penalty",
    outbound={"penalty": "enforcement_oversight.penalty"},
)
