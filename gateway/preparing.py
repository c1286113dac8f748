"""Large batches are prepared (parsed, mapped, validated) in worker processes, beside the event
loop, so that validation of one batch overlaps the durable commit of another on a second core.

The workers hand back rows ready for the store: payload bytes and a few strings per record.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gateway.config import Config, ConnectorConfig, resolve_mapping
from gateway.ingest import Prepared, RecordPreparer
from mappings import CompiledMapping

__all__ = ["INLINE_BELOW", "PreparePool"]

INLINE_BELOW = 64 * 1024  # smaller bodies are prepared in place: a process hop would cost more

_state: tuple[RecordPreparer, dict[str, ConnectorConfig], dict[str, CompiledMapping]] | None = None


def _start(connectors: list[ConnectorConfig], base_dir: Path, log_hash: str, max_records: int,
           extra_regions: dict[str, str]) -> None:
    global _state  # noqa: PLW0603 - one worker process, one preparer: its whole reason to exist
    mappings = {c.id: resolve_mapping(name, base_dir) for c in connectors if (name := c.mapping_name)}
    preparer = RecordPreparer(log_hash=log_hash, max_records=max_records, extra_regions=extra_regions)
    _state = (preparer, {c.id: c for c in connectors}, mappings)


def _prepare(connector_id: str, body: bytes, content_type: str, received_at: str) -> Prepared:
    assert _state is not None, "worker not started"
    preparer, connectors, mappings = _state
    return preparer.prepare(connectors[connector_id], mappings.get(connector_id), body, content_type, received_at)


def _ready() -> bool:
    return _state is not None


class PreparePool:
    """Worker processes that each hold a preparer for every connector."""

    def __init__(self, config: Config, processes: int) -> None:
        self._pool = ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
            initargs=(list(config.connector), config.base_dir, config.gateway.log_hash, config.gateway.max_records,
                      config.gateway.extra_region_codes),
        )

    async def warm_up(self) -> None:
        """Start the workers now rather than on the first large batch."""
        await asyncio.get_running_loop().run_in_executor(self._pool, _ready)

    async def prepare(self, connector_id: str, body: bytes, content_type: str, received_at: str) -> Prepared:
        """Prepare one body in a worker; ``BodyError`` comes back as raised there."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _prepare, connector_id, body, content_type, received_at)

    def close(self) -> None:
        """Stop the workers."""
        self._pool.shutdown(wait=True, cancel_futures=True)
