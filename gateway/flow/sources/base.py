"""What polling a system and watching a folder share: the connector, its mapping, the preparer,
the store and the policy in force, and the status the admin API shows of each source."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.config import ConnectorConfig
from gateway.flow.in_force import PolicyInForce
from gateway.flow.prepare import Prepared, RecordPreparer
from gateway.store.model import IngestOutcome, SourceMark
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping

__all__ = ["MAX_FILE_RECORDS", "Source", "SourceStatus"]

MAX_FILE_RECORDS = 1_000_000


@dataclass
class SourceStatus:
    """What a source last did, for the admin API: when, how much, and what went wrong."""

    kind: str  # poll | file
    last_run: str | None = None
    last_error: str | None = None
    records: int = 0  # records taken since the gateway started
    rejected: int = 0  # of those, the records rejected (quarantined)
    failed_rounds: int = 0  # rounds that failed (a page unreadable, the system unreachable, all rejected)
    standby: bool = False  # another gateway on the database reads this source now
    files: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0})

    def as_dict(self) -> dict[str, Any]:
        """The status as JSON."""
        out = asdict(self)
        if self.kind != "file":
            del out["files"]
        return out


class Source:
    """What polling and file dropping share: the connector, its mapping, the preparer, the store."""

    kind = ""

    def __init__(self, connector: ConnectorConfig, runner: StoreRunner, *, in_force: PolicyInForce,
                 preparer: RecordPreparer, mapping: CompiledMapping | None) -> None:
        self.connector, self.runner, self.in_force = connector, runner, in_force
        self.preparer, self.mapping = preparer, mapping
        self.status = SourceStatus(self.kind)

    @property
    def enabled(self) -> bool:
        """Whether the connector is in force (an admin may disable it at run time: its source pauses)."""
        return self.in_force.enabled(self.connector.id)

    async def _prepare(self, body: bytes, content_type: str, *, whole: bool) -> Prepared:
        received_at = self.runner.store.now()
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.preparer.prepare(
            self.connector, self.mapping, body, content_type, received_at, whole=whole,
            max_records=MAX_FILE_RECORDS if whole else None))

    async def _store(self, batch_id: str, prepared: Prepared, mark: SourceMark | None) -> list[IngestOutcome]:
        outcomes = await self.runner.ingest(self.connector.id, batch_id, prepared.incoming, prepared.rejected, mark,
                                            policy=self.in_force.policy)
        self.status.records += len(outcomes)
        self.status.rejected += sum(o.status == "rejected" for o in outcomes)
        return outcomes
