"""Sources the gateway fetches itself: systems it polls (``polling``), and folders where systems
drop files (``file_drop``).

Both hand what they fetch to the same preparer and store as a push does, and store with each batch
a ``SourceMark`` in the same transaction — the cursor after a polled page, the digest of a file —
so that after a crash a source resumes exactly after what is stored: nothing skipped, nothing
taken twice. A new kind of source is a module here with a ``Source`` subclass and its round,
started by ``Sources``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import structlog

from gateway.config import Config
from gateway.flow.in_force import PolicyInForce
from gateway.flow.prepare import RecordPreparer
from gateway.flow.sources.base import SourceStatus
from gateway.flow.sources.file_drop import FileDrop
from gateway.flow.sources.polling import SourcePoller
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping

__all__ = ["FileDrop", "SourcePoller", "SourceStatus", "Sources", "hold_turn"]

log = structlog.get_logger("supex.sources")


class Sources:
    """One task per polled system and per watched folder. Where several gateways share a database,
    one of them at a time reads each source (its turn, renewed every round; taken over by another
    gateway when it has not been renewed for ``hold_turn(every)``), the others stand by."""

    def __init__(self, config: Config, runner: StoreRunner, in_force: PolicyInForce, preparer: RecordPreparer,
                 mappings: dict[str, CompiledMapping], *, clock: Callable[[], float],
                 session: aiohttp.ClientSession | None = None) -> None:
        self.runner, self.name, self._clock = runner, config.gateway.instance, clock
        self._session = session or aiohttp.ClientSession()
        self._own_session = session is None
        self.pollers = {c.id: SourcePoller(c, runner, in_force=in_force, preparer=preparer, mapping=mappings.get(c.id),
                                           secret=config.secrets[c.id],
                                           session=self._session, clock=clock)
                        for c in config.connector if c.poll_url and c.enabled}
        self.drops = {c.id: FileDrop(c, runner, in_force=in_force, preparer=preparer, mapping=mappings.get(c.id),
                                    base_dir=config.base_dir)
                      for c in config.connector if c.watch_dir and c.enabled}
        self._tasks: list[asyncio.Task[None]] = []

    def status(self) -> dict[str, SourceStatus]:
        """Each source's status by connector."""
        return {**{c: p.status for c, p in self.pollers.items()}, **{c: d.status for c, d in self.drops.items()}}

    def start(self) -> None:
        """Start polling and watching."""
        self._tasks = [asyncio.create_task(self._every(p, p.poll_once), name=f"poll-{c}")
                       for c, p in self.pollers.items()]
        self._tasks += [asyncio.create_task(self._every(d, d.scan_once), name=f"watch-{c}")
                        for c, d in self.drops.items()]

    async def stop(self) -> None:
        """Stop the tasks; a batch being stored is stored, with its mark, or not at all."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_session:
            await self._session.close()

    async def my_turn(self, source: SourcePoller | FileDrop) -> bool:
        """Whether this gateway reads ``source`` this round (it then holds the turn a while longer)."""
        mine = await self.runner.call(self.runner.store.runtime.take_turn, f"source:{source.connector.id}", self.name,
                                      self._clock(), hold_turn(source.every))
        source.status.standby = not mine
        return mine

    async def _every(self, source: SourcePoller | FileDrop, round_: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                if await self.my_turn(source):
                    await round_()
            except Exception as exc:  # noqa: BLE001 - reported in the status and log; tried again next round
                log.warning("source_round_failed", connector=source.connector.id, reason=str(exc))
            await asyncio.sleep(source.every)


def hold_turn(every: float) -> float:
    """How long a source's turn lasts unrenewed: three rounds, and a minute at least (a round may
    take long against a slow system); a gateway that died has its sources taken over after it."""
    return max(60.0, 3 * every)
