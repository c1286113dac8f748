"""A system that can only export files: the gateway watches a folder for them."""

from connectors.kinds import ConnectorKind

KIND = ConnectorKind(
    name="file_drop",
    title="文件交换目录",
    description="Files (CSV, JSON, NDJSON, XML) dropped into a watched folder, each ingested as a unit.",
    sources=frozenset({"file"}),
)
