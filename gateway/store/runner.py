"""Runs the blocking store on one worker thread, so the event loop never waits on the disk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from gateway.store.sqlite import SQLiteStore

__all__ = ["StoreRunner"]

T = TypeVar("T")


class StoreRunner:
    """The store and the single thread that all its calls go through."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supex-store")

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function(*args, **kwargs)`` on the store thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args, **kwargs))

    def close(self) -> None:
        """Finish pending calls and close the store."""
        self._executor.shutdown(wait=True)
        self.store.close()
