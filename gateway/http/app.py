"""The HTTP gateway: the aiohttp application factory, and what runs while it serves.

Each room of ``gateway.http`` holds the handlers of one part of the interface and declares its
routes (``ROUTES``): ``records`` (producers), ``inbox`` (consumers), ``procedure``, ``audit``, ``admin``,
``probes`` and ``console``. The router, the roles each route admits and the OpenAPI document are
built from those declarations. Two middlewares run before every handler: ``observe`` (request
id, metrics, one log line, every refusal answered alike) and ``authenticate`` (the route's roles).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from gateway.config import Config, resolve_mapping
from gateway.flow.checkpoints import Checkpoints, load_log_key
from gateway.flow.delivery import Deliverer
from gateway.flow.in_force import PolicyInForce
from gateway.flow.prepare import PreparePool, RecordPreparer
from gateway.flow.procedure import Deadlines, SharingProcedure
from gateway.flow.sharing import Sharer
from gateway.flow.sources import Sources
from gateway.http import admin, audit, console, inbox, probes, procedure, records, transparency
from gateway.http.auth import authenticate
from gateway.http.context import (
    BODIES,
    CHECKPOINTS,
    CLOCK,
    CONFIG,
    DEADLINES,
    DELIVERER,
    IN_FORCE,
    LIMITER,
    MAPPINGS,
    METRICS,
    NONCES,
    OPENAPI,
    PREPARE_POOL,
    PREPARER,
    PROCEDURE,
    SHARER,
    SOURCES,
    STORE,
    THROTTLE,
    TOKENS,
    WARNINGS,
    Clock,
)
from gateway.http.middleware import observe
from gateway.http.openapi import openapi_document
from gateway.http.routes import Route, check_declared, install_routes
from gateway.http.security import BodyBudget, FailureThrottle, NonceCache, RateLimiter, TokenBook
from gateway.observability import Metrics, SourceCollector, WriterCollector
from gateway.safety import at_rest_warnings
from gateway.signing import retired_keys
from gateway.store import open_store
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping

__all__ = ["all_routes", "create_app"]

log = structlog.get_logger("supex.gateway")


def all_routes() -> tuple[Route, ...]:
    """Every route of the gateway, room by room."""
    return (*records.ROUTES, *inbox.ROUTES, *procedure.ROUTES, *audit.ROUTES, *transparency.ROUTES, *admin.ROUTES,
            *probes.ROUTES,
            *console.ROUTES)


async def _housekeeping(app: web.Application, every: float = 0.2, follow_every: int = 10,
                        forget_every: int = 300) -> None:
    """Checkpoint the WAL five times a second, beside the writer, so that no backlog builds up;
    every two seconds take up rules and connector states changed at another gateway; every minute
    forget the nonces whose window has passed; and every ``[log] checkpoint_every_seconds`` sign a
    checkpoint of the log, if it has grown."""
    runner = app[STORE]
    loop = asyncio.get_running_loop()
    sign_every = max(1, round(app[CONFIG].log.checkpoint_every_seconds / every))
    for turn in itertools.count(1):
        await asyncio.sleep(every)
        try:
            await loop.run_in_executor(None, runner.store.checkpoint)
            if turn % follow_every == 0:
                await app[IN_FORCE].follow()
            if turn % forget_every == 0:
                await runner.call(runner.store.records.forget_nonces, app[CLOCK]())
            if turn % sign_every == 0:
                await app[CHECKPOINTS].sign()
        except Exception as exc:  # noqa: BLE001 - retried at the next turn
            log.warning("housekeeping_failed", reason=str(exc))


def _store_context(given: StoreRunner | None, deliver: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        runner = given or StoreRunner(open_store(config.store_path(), log_hash=config.gateway.log_hash,
                                                 cipher=config.data_cipher,
                                                 lease_seconds=config.gateway.delivery_lease_seconds))
        app[STORE] = runner
        store = runner.store
        try:
            if given is None:
                store.hold_for_serving()
            store.sealed.check_keys()
        except BaseException:
            runner.close()
            raise
        app[METRICS].registry.register(WriterCollector(lambda: (store.writer.waited, store.writer.held)))
        app[CHECKPOINTS] = Checkpoints(runner, load_log_key(config, create=True), config.log.witness,
                                       retired_keys(config.key_path()), config.log.checkpoint_every_seconds)
        in_force = app[IN_FORCE] = PolicyInForce(config, runner)
        await in_force.load()
        sharer = app[SHARER] = Sharer(in_force, runner)
        task = asyncio.create_task(_housekeeping(app))
        mappings: dict[str, CompiledMapping] = app[MAPPINGS]
        deliverer = app[DELIVERER] = Deliverer(config, runner, sharer, app[METRICS], mappings, clock=app[CLOCK])
        in_force.on_change(deliverer.wake)
        sources = app[SOURCES] = Sources(config, runner, in_force, app[PREPARER], mappings, clock=app[CLOCK])
        app[METRICS].registry.register(SourceCollector(sources.status))
        sharing = app[PROCEDURE] = SharingProcedure(runner, in_force, metrics=app[METRICS])
        deadlines = app[DEADLINES] = Deadlines(sharing, notify=deliverer.notify,
                                               push_connectors=frozenset(deliverer.consumers))
        if deliver:
            await deliverer.start()
            sources.start()
            await deadlines.start(config.gateway.instance, clock=app[CLOCK])
        yield
        await deadlines.stop()
        await sources.stop()
        await deliverer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        runner.close()

    return context


async def _pool_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    pool = PreparePool(config, config.gateway.preparers) if config.gateway.preparers else None
    if pool is not None:
        await pool.warm_up()
        app[PREPARE_POOL] = pool
    yield
    if pool is not None:
        pool.close()


def create_app(config: Config, *, clock: Clock = time.time, monotonic_clock: Clock = time.monotonic,
               store: StoreRunner | None = None, deliver: bool = True) -> web.Application:
    """The gateway application for ``config``; the store is opened on start-up unless given. With
    ``deliver=False`` nothing runs in the background: push deliveries wait until
    ``app[DELIVERER].deliver_once`` is called, sources until ``app[SOURCES]`` is driven."""
    app = web.Application(middlewares=[observe, authenticate], client_max_size=config.gateway.max_body)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[NONCES] = NonceCache(config.gateway.clock_skew_seconds, clock)
    app[TOKENS] = TokenBook(config)
    app[THROTTLE] = FailureThrottle(clock=monotonic_clock)
    app[BODIES] = BodyBudget(2 * config.gateway.max_body)
    app[LIMITER] = RateLimiter({c.id: c.max_requests_per_second for c in config.connector
                                if c.max_requests_per_second}, monotonic_clock)
    app[WARNINGS] = at_rest_warnings(config)
    app[PREPARER] = RecordPreparer(log_hash=config.gateway.log_hash, max_records=config.gateway.max_records,
                                    extra_regions=config.gateway.extra_region_codes)
    app[MAPPINGS] = {c.id: resolve_mapping(name, config.base_dir) for c in config.connector
                     if (name := c.mapping_name)}
    app.cleanup_ctx.append(_store_context(store, deliver))
    app.cleanup_ctx.append(_pool_context)
    routes = all_routes()
    install_routes(app, routes)
    app[OPENAPI] = openapi_document(routes)
    console.install(app, monotonic_clock)
    check_declared(app)
    return app
