"""The double-random platform (双随机、一公开监管平台): CSV exports of inspection results."""

from connectors.kinds import ConnectorKind

KIND = ConnectorKind(
    name="double_random",
    title="双随机、一公开监管平台",
    description="Inspection results as the platform's CSV export (UTF-8, UTF-8 with BOM or GB18030).",
    mapping="double_random.result",
    sources=frozenset({"poll", "file"}),
)
