"""Shared fixtures: the data folder, one valid record of every type, a fixed clock."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import settings

from gateway.http.context import CONFIG
from gateway.http.serving import start_gateway
from schemas import Validator
from tests.backends import Backend, Databases, backend_for, postgres_unavailable

DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).parents[1] / "connectors" / "samples"  # the external systems' own formats
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
VALID_RECORDS: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "schemas" / "examples.json").read_text(encoding="utf-8"))
IDENTIFIERS: dict[str, list[str]] = json.loads((DATA / "identifiers.json").read_text(encoding="utf-8"))


@contextlib.contextmanager
def served_in_thread(app: web.Application) -> Iterator[str]:
    """``app`` served on a free loopback port from a thread and event loop of its own (for callers
    that run their own: a command, a browser), behind the connection guard ``supex serve`` has, its
    base URL given; stopped afterwards."""
    loop = asyncio.new_event_loop()
    runner: web.AppRunner | None = None
    ready: list[str] = []
    started = threading.Event()

    def serve() -> None:
        nonlocal runner
        asyncio.set_event_loop(loop)
        runner, _ = loop.run_until_complete(start_gateway(app, app[CONFIG].gateway, "127.0.0.1", 0))
        ready.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(timeout=30)
    try:
        yield ready[0]
    finally:
        assert runner is not None
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def fixed_clock() -> dt.datetime:
    """The tests' 'now': 2026-11-26 12:00 UTC."""
    return NOW


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[Databases]:
    """Throwaway PostgreSQL databases for the session's tests (skipped where no server answers)."""
    if (reason := postgres_unavailable()) is not None:
        pytest.skip(reason)
    databases = Databases()
    yield databases
    databases.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each store test runs on SQLite and on a fresh PostgreSQL database."""
    yield from backend_for(request, tmp_path)


@pytest.fixture(scope="session")
def validator() -> Validator:
    """A strict validator with the fixed clock."""
    return Validator(clock=fixed_clock)


@pytest.fixture
def record() -> Any:
    """A factory of deep copies of the valid record of a type."""
    return lambda record_type: copy.deepcopy(VALID_RECORDS[record_type])

# Property tests are deterministic here (the same examples every run); set
# HYPOTHESIS_PROFILE=explore to search afresh.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
