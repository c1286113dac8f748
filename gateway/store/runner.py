"""Runs the blocking store on one worker thread, so the event loop never waits on the disk.

Pushes are group-committed: while the store thread commits one transaction, the batches that
arrive queue up, and the next transaction takes all of them — one fsync for many requests. The
nonces of signed requests ride in the same transactions (``first_use``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.exceptions import ReplayError
from gateway.store.model import Incoming, IngestOutcome, Quarantined, SourceMark
from gateway.store.records import Batch, Nonce
from gateway.store.sql import SQLStore

if TYPE_CHECKING:
    from policy import Policy

__all__ = ["StoreRunner"]

T = TypeVar("T")
Job = tuple[Batch, Nonce | None, "Policy | None", "asyncio.Future[list[IngestOutcome] | None]"]
NonceJob = tuple[Nonce, "asyncio.Future[bool]"]
_GROUP_RECORDS = 20_000  # at most this many records in one group commit


class StoreRunner:
    """The store and the single thread that all its calls go through."""

    def __init__(self, store: SQLStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supex-store")
        self._pending: list[Job] = []
        self._nonces: list[NonceJob] = []
        self._guard = threading.Lock()
        self._draining = False

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function(*args, **kwargs)`` on the store thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))

    async def ingest(self, connector: str, batch_id: str, incoming: list[Incoming],
                     rejected: list[Quarantined], mark: SourceMark | None = None, *,
                     nonce: Nonce | None = None, policy: Policy | None = None) -> list[IngestOutcome]:
        """Store one batch, committed together with whatever other batches are waiting (a source's
        ``mark`` in the same transaction) and routed with ``policy``: a group is routed with the
        policy of its latest batch, the one in force. With its request's ``nonce``, the nonce is
        recorded in the same transaction and the batch stored only if it is new (``ReplayError``
        otherwise)."""
        future: asyncio.Future[list[IngestOutcome] | None] = asyncio.get_running_loop().create_future()
        with self._guard:
            self._pending.append(((connector, batch_id, incoming, rejected, mark), nonce, policy, future))
        self._wake()
        outcomes = await future
        if outcomes is None:
            raise ReplayError("随机数已使用（重放）/ nonce already used (replay)")
        return outcomes

    async def first_use(self, connector: str, nonce: str, until: float) -> bool:
        """Record a signed request's nonce in the store (kept until ``until``), committed with
        whatever else is waiting; whether no gateway on the store had recorded it before."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._guard:
            self._nonces.append(((connector, nonce, until), future))
        self._wake()
        return await future

    def _wake(self) -> None:
        with self._guard:
            start = not self._draining
            self._draining = True
        if start:
            self._executor.submit(self._drain, asyncio.get_running_loop())

    def _take(self) -> tuple[list[Job], list[NonceJob]]:
        with self._guard:
            taken: list[Job] = []
            size = 0
            while self._pending and (not taken or size + len(self._pending[0][0][2]) <= _GROUP_RECORDS):
                job = self._pending.pop(0)
                taken.append(job)
                size += len(job[0][2]) + len(job[0][3])
            nonces, self._nonces = self._nonces, []
            if not taken and not nonces:
                self._draining = False
            return taken, nonces

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            jobs, nonces = self._take()
            if not jobs and not nonces:
                return
            waiting: list[asyncio.Future[Any]] = [f for *_, f in jobs] + [f for _, f in nonces]
            policy = jobs[-1][2] if jobs else None
            try:
                results, fresh = self.store.records.commit_group([(batch, nonce) for batch, nonce, _, _ in jobs],
                                                                 [n for n, _ in nonces], policy=policy)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the failure
                for future in waiting:
                    loop.call_soon_threadsafe(_settle, future, None, exc)
                continue
            for future, result in zip(waiting, [*results, *fresh], strict=True):
                loop.call_soon_threadsafe(_settle, future, result, None)

    def close(self) -> None:
        """Finish pending calls and close the store."""
        self._executor.shutdown(wait=True)
        self.store.close()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
