"""A departmental system that speaks the standard interface itself (JSON, NDJSON)."""

from connectors.kinds import ConnectorKind

KIND = ConnectorKind(
    name="http_json",
    title="部门业务系统（标准接口）",
    description="A departmental business system that pushes and receives standard records as JSON.",
)
