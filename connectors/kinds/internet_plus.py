"""The Internet+ Supervision system (互联网+监管系统): JSON rows of its exchange tables."""

from connectors.kinds import ConnectorKind

KIND = ConnectorKind(
    name="internet_plus",
    title="互联网+监管系统",
    description="Internet+ Supervision exchange-table rows: inspection actions in, inspections and penalties out.",
    mapping="internet_plus.check_action",
    outbound={"inspection": "internet_plus.check_action", "penalty": "internet_plus.penalty"},
)
