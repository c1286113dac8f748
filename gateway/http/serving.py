"""The gateway on its socket: connections a slow or greedy client cannot use up.

aiohttp answers the requests; beneath it, ``ConnectionGuard`` wraps each connection's protocol:
a client address holds at most ``max_connections_per_address`` connections at once, and all
clients together leave the gateway 256 of its open files (more are closed as they open); a
request's headers must have come within ``header_timeout_seconds`` of the connection opening or
of the previous answer (a client sending half a header and waiting is cut off); and a caller
refused by its credentials is read no further. aiohttp itself closes a kept-alive connection idle
for ``keepalive_timeout_seconds``. At start the gateway raises its open-files limit to the most it
may, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.config import GatewayConfig
from gateway.exceptions import ConfigError
from gateway.http.security import client_key

__all__ = ["ConnectionGuard", "GuardedSite", "raise_open_files_limit", "run_gateway"]

log = structlog.get_logger("supex.serving")
_END_OF_HEAD = b"\r\n\r\n"


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to its hard limit; the limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft, hard


class ConnectionGuard:
    """Counts connections by client address and times the arrival of each request's headers."""

    def __init__(self, *, per_address: int, header_timeout: float, keepalive_timeout: float,
                 total: int | None = None) -> None:
        self.per_address, self.header_timeout, self.keepalive_timeout = per_address, header_timeout, keepalive_timeout
        # connections at most, from everyone: files the gateway itself needs (its store, dropped files,
        # its own requests to push consumers and polled systems) are never crowded out by clients
        self.total = total if total is not None else max(64, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 256)
        self.open: Counter[str] = Counter()
        self.refused = self.timed_out = 0
        self._guarded: dict[Any, _Guarded] = {}

    def factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server`` wrapping ``make``'s protocols."""
        return lambda: _Guarded(self, make)

    def cut_off(self, transport: Any) -> None:
        """A caller refused by its credentials: read nothing more from it, and close the connection
        once its answer has had a moment to leave (what it still sends is never taken in)."""
        guarded = self._guarded.get(transport)
        if guarded is not None:
            guarded.cut_off()

    def answered(self, transport: Any) -> None:
        """A request on ``transport`` was answered: the next one's headers are timed from now (the
        idle time a kept-alive connection may wait, then the time to send them)."""
        guarded = self._guarded.get(transport)
        if guarded is not None:
            guarded.arm(self.keepalive_timeout + self.header_timeout)


class _Guarded(asyncio.Protocol):
    """One connection's protocol, in front of aiohttp's."""

    def __init__(self, guard: ConnectionGuard, make: Callable[[], asyncio.Protocol]) -> None:
        self._guard, self._make = guard, make
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._address = ""
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes of an unfinished head, to find its end across reads
        self._cut = False  # refused: being closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._address = client_key(str(peer[0])) if isinstance(peer, tuple) and peer else "unix"
        guard = self._guard
        if guard.open[self._address] >= guard.per_address or guard.open.total() >= guard.total:
            guard.refused += 1
            if guard.refused in (1, 10) or guard.refused % 1000 == 0:
                log.warning("connections_refused", address=self._address, refused=guard.refused,
                            per_address=guard.per_address, total=guard.total,
                            hint="max_connections_per_address, or the open-files limit")
            transport.abort()
            return
        guard.open[self._address] += 1
        self._transport = transport
        guard._guarded[transport] = self
        self._inner = self._make()
        self.arm(guard.header_timeout)
        self._inner.connection_made(transport)

    def arm(self, seconds: float) -> None:
        """Close the connection unless a request's head has come within ``seconds``."""
        if self._cut:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._tail = b""
        self._timer = asyncio.get_running_loop().call_later(seconds, self._too_slow)

    def cut_off(self) -> None:
        """Stop reading, and close in a second (the answer goes out first)."""
        if self._transport is not None and not self._transport.is_closing():
            self._cut = True
            self._transport.pause_reading()
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(1.0, self._transport.close)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._guard.timed_out += 1
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._cut:  # refused: nothing more is taken in (aiohttp may have resumed reading)
            if self._transport is not None:
                self._transport.pause_reading()
            return
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEAD in seen:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = seen[-3:]
        assert self._inner is not None
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        guard = self._guard
        guard._guarded.pop(self._transport, None)
        guard.open[self._address] -= 1
        if guard.open[self._address] <= 0:
            del guard.open[self._address]
        self._inner.connection_lost(exc)


class GuardedSite(web.TCPSite):
    """A TCP site whose connections pass through a ``ConnectionGuard``."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port, backlog=1024)
        self.guard = guard

    async def start(self) -> None:
        """Listen, each connection guarded."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.guard.factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)


def guard_for(config: GatewayConfig) -> ConnectionGuard:
    """The connection guard the ``[gateway]`` settings ask for."""
    return ConnectionGuard(per_address=config.max_connections_per_address,
                           header_timeout=config.header_timeout_seconds,
                           keepalive_timeout=config.keepalive_timeout_seconds)


GUARD = web.AppKey("connection_guard", ConnectionGuard)


async def start_gateway(app: web.Application, config: GatewayConfig, host: str | None = None,
                        port: int | None = None) -> tuple[web.AppRunner, GuardedSite]:
    """``app`` listening on the configured (or given) address behind a connection guard."""
    guard = app[GUARD] = guard_for(config)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=config.keepalive_timeout_seconds,
                           read_bufsize=32 * 1024)  # at most 64 KiB of a body buffered before it is read
    await runner.setup()
    address = (host or config.host, config.port if port is None else port)
    site = GuardedSite(runner, *address, guard)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"无法监听 {address[0]}:{address[1]} / cannot listen on {address[0]}:{address[1]}: "
                          f"{exc.strerror or exc} (another gateway or program there? set listen in [gateway])") from exc
    return runner, site


def run_gateway(app: web.Application, config: GatewayConfig, on_ready: Callable[[], None] = lambda: None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down cleanly; ``on_ready`` once it listens."""

    async def main() -> None:
        runner, _ = await start_gateway(app, config)
        on_ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
