"""Push delivery: the outbox worked off by one task per push consumer.

Each round takes the consumer's due deliveries (oldest first, up to its batch size), shares each
record again under the policy in force (``gateway.flow.sharing``, as the inbox does), writes them
in the consumer's own format, and POSTs them signed with the consumer's secret
(``connectors.transport``). A failed delivery waits in the store for its next attempt, so that the
schedule survives a restart: tenacity's strategies decide when (exponential backoff with jitter)
and when to give up (``delivery_attempts`` tries or ``delivery_max_age`` since the record
arrived), after which it is a dead letter. An answer that would be the same next time (a
redirect, a refusal: ``classify`` says ``fatal``) makes it a dead letter at once. A circuit
breaker per consumer stops trying a consumer that keeps failing, and since every consumer has
its own task and timeouts, a dead consumer never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog
from tenacity import RetryCallState, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from connectors.exceptions import UnreachableError
from connectors.transport import classify, send
from gateway.config import Config, ConnectorConfig, resolve_mapping
from gateway.exceptions import DeliveryFailedError
from gateway.flow.sharing import Sharer
from gateway.observability import Metrics
from gateway.store.model import Due, Sharing
from gateway.store.runner import StoreRunner
from mappings import CompiledMapping
from mappings.media import NOTICES, WRITTEN_AS
from mappings.pipeline import write_rows
from policy import local_today

__all__ = ["CircuitBreaker", "Deliverer", "schedule"]

log = structlog.get_logger("supex.delivery")
_BACKOFF = wait_exponential_jitter(initial=1, max=600, jitter=1)  # seconds before the next attempt


@dataclass
class CircuitBreaker:
    """Closed while a consumer answers; open (no attempts) for ``cooldown`` seconds after
    ``threshold`` failures in a row; then one trial round decides (half-open)."""

    threshold: int = 3
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self.opened_at is None:
            return "closed"
        return "open" if self.clock() - self.opened_at < self.cooldown else "half-open"

    def wait(self) -> float:
        """Seconds until an attempt may be made (0: now)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (self.clock() - self.opened_at))

    def succeeded(self) -> None:
        """The consumer took a round: close the circuit."""
        self.failures, self.opened_at = 0, None

    def failed(self) -> None:
        """A round failed: open the circuit after ``threshold`` in a row (again after a failed trial)."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


def _own_formats(consumer: ConnectorConfig, own: CompiledMapping | None, config: Config) -> dict[
    str, CompiledMapping
]:
    """The mappings that write what ``consumer`` receives in its own format, by record type: its
    kind's, and the mapping it names itself if that one also writes."""
    formats = {t: resolve_mapping(name, config.base_dir) for t, name in consumer.preset.outbound.items()}
    if own is not None and own.reversible:
        formats[own.record_type] = own
    return formats


def _one_format(sendable: list[tuple[Due, Sharing]], formats: Mapping[str, CompiledMapping]) -> tuple[
    CompiledMapping | None, list[tuple[Due, Sharing]]
]:
    """The mapping of the first delivery's type (``None``: standard JSON) and the deliveries that go
    in that same format: one body has one format."""
    first = formats.get(sendable[0][0].record["record_type"])
    return first, [s for s in sendable if formats.get(s[0].record["record_type"]) is first]


def _encode(mapping: CompiledMapping | None, sendable: list[tuple[Due, Sharing]]) -> tuple[bytes, str, list[Due]]:
    """One body of the shared records, written through ``mapping`` (standard JSON without one), and the
    deliveries it cannot express."""
    if mapping is None:
        return orjson.dumps([_shared(sharing) for _, sharing in sendable]), WRITTEN_AS["json"], []
    rows, unmappable = [], []
    for item, sharing in sendable:
        row, problems = mapping.from_standard(_shared(sharing))
        if problems:
            unmappable.append(item)
        else:
            rows.append(row)
    out = io.BytesIO()
    write_rows(mapping, rows, out)
    return out.getvalue(), WRITTEN_AS[mapping.format], unmappable


def _shared(sharing: Sharing) -> dict[str, Any]:
    assert sharing.shared is not None
    return sharing.shared.record


def schedule(attempts: int, received_at: float, now: float, *, max_attempts: int, max_age: float) -> float | None:
    """When to try a delivery again after ``attempts`` failed ones (epoch seconds), or ``None``
    when it is given up on: tenacity's wait and stop strategies, over state kept in the store."""
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type] # strategies read only what is set here
    state.attempt_number = attempts
    state.start_time, state.outcome_timestamp = received_at, now
    give_up = stop_after_attempt(max_attempts) | stop_after_delay(max_age)
    return None if give_up(state) else now + float(_BACKOFF(state))


class Deliverer:
    """One delivery task per push consumer, woken when new deliveries are routed."""

    def __init__(self, config: Config, runner: StoreRunner, sharer: Sharer, metrics: Metrics,
                 mappings: Mapping[str, CompiledMapping], *, clock: Callable[[], float] = time.time,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.config, self.runner, self.sharer, self.metrics = config, runner, sharer, metrics
        self._clock = clock
        self.consumers = {c.id: c for c in config.connector if c.delivery == "push" and c.enabled}
        # what each consumer takes in its own format, by record type (other types go as standard JSON)
        self.formats = {c.id: _own_formats(c, mappings.get(c.id), config) for c in self.consumers.values()}
        self.breakers = {c: CircuitBreaker() for c in self.consumers}
        self._wakers = {c: asyncio.Event() for c in self.consumers}
        self._tasks: list[asyncio.Task[None]] = []
        self._session = session
        self._own_session = session is None
        self.name = config.gateway.instance  # who claims deliveries in the store

    # ---- running ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take back the claims a previous process here left, and start one task per push consumer."""
        released = await self.runner.call(self.runner.store.outbox.release_claims, self.name)
        if released:
            log.info("claims_released", claimant=self.name, count=released)
        self._tasks = [asyncio.create_task(self._run(c), name=f"deliver-{c}") for c in self.consumers]

    async def stop(self) -> None:
        """Stop the tasks (deliveries not yet confirmed stay in the outbox) and close the session."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None and self._own_session:
            await self._session.close()

    def wake(self) -> None:
        """New deliveries may be waiting: look now rather than at the next poll."""
        for event in self._wakers.values():
            event.set()

    async def _run(self, consumer: str) -> None:
        while True:
            try:
                pause = await self.deliver_once(consumer)
            except Exception:
                log.exception("delivery_round_failed", consumer=consumer)
                pause = 5.0
            waker = self._wakers[consumer]
            if pause > 0:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
                # arrives just as the event is set, and the task would never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await waker.wait()
            waker.clear()

    # ---- one round ------------------------------------------------------------------------------

    async def deliver_once(self, consumer_id: str) -> float:
        """Push one batch of due deliveries; returns how long to wait before the next round."""
        if (hold := self._hold(consumer_id)) > 0:
            return hold
        consumer, breaker, outbox = self.consumers[consumer_id], self.breakers[consumer_id], self.runner.store.outbox
        due = await self.runner.call(outbox.due, consumer_id, self._clock(), consumer.push_batch, self.name)
        if not due:
            next_at = await self.runner.call(outbox.next_due, consumer_id)
            return 1.0 if next_at is None else min(1.0, max(0.05, next_at - self._clock()))
        share = self.sharer.for_consumer(consumer_id, local_today(dt.datetime.fromtimestamp(self._clock(), dt.UTC)))
        sendable: list[tuple[Due, Sharing]] = []
        withheld: list[tuple[Due, str]] = []
        for item in due:
            sharing = share(item.record)
            if sharing.shared is not None:
                sendable.append((item, sharing))
            else:
                withheld.append((item, sharing.decision.reason))
        if withheld:
            await self.runner.call(outbox.withheld, consumer_id, withheld)
        if not sendable:
            return 0.0
        mapping, this_round = _one_format(sendable, self.formats[consumer_id])
        if len(this_round) < len(sendable):  # the others go next round
            chosen = {item.seq for item, _ in this_round}
            await self.runner.call(outbox.release, consumer_id, [s[0] for s in sendable if s[0].seq not in chosen])
            sendable = this_round
        body, content_type, unmappable = _encode(mapping, sendable)
        if unmappable:  # no retry can express these in the consumer's format
            await self.runner.call(outbox.failed, consumer_id, unmappable, "不能转换为接收方格式 / cannot be "
                                   "written in the consumer's format", self._clock(), True)
            written = {item.seq for item in unmappable}
            sendable = [s for s in sendable if s[0].seq not in written]
            if not sendable:
                return 0.0
        # the seqs of the log entries that shared them, in the body's order: each one's receipt
        receipts = ",".join(str(item.log_seq) for item, _ in sendable)
        try:
            await self._post(consumer, body, content_type, {"X-Supex-Receipts": receipts})
        except DeliveryFailedError as exc:
            breaker.failed()
            await self._failed(consumer, [s[0] for s in sendable], exc)
            self.metrics.deliveries.labels(consumer_id, "failed").inc(len(sendable))
            return breaker.wait() or 0.05
        breaker.succeeded()
        overdue = await self.runner.call(outbox.delivered, consumer_id, sendable)
        self.metrics.deliveries.labels(consumer_id, "delivered").inc(len(sendable))
        if overdue:
            self.metrics.overdue.labels(consumer_id).inc(overdue)
        return 0.0

    def _hold(self, consumer_id: str) -> float:
        """Seconds before a round may run: while the circuit is open (until it half-opens), or while
        the consumer is disabled at run time (its deliveries wait in the outbox)."""
        if not self.sharer.in_force.enabled(consumer_id):
            return 1.0
        return self.breakers[consumer_id].wait()

    async def _failed(self, consumer: ConnectorConfig, items: list[Due], error: DeliveryFailedError) -> None:
        now = self._clock()
        gateway = self.config.gateway
        by_turn: dict[float | None, list[Due]] = {}
        for item in items:
            received = dt.datetime.fromisoformat(item.record["received_at"]).timestamp()
            turn = None if error.final else schedule(item.attempts + 1, received, now,
                                                     max_attempts=gateway.delivery_attempts,
                                                     max_age=gateway.delivery_max_age_seconds)
            by_turn.setdefault(turn, []).append(item)
        outbox = self.runner.store.outbox
        for turn, group in by_turn.items():
            await self.runner.call(outbox.failed, consumer.id, group, str(error), now if turn is None else turn,
                                   turn is None)
            if turn is None:
                log.warning("dead_lettered", consumer=consumer.id, count=len(group), reason=str(error))

    async def notify(self, consumer_id: str, body: bytes) -> None:
        """Push the sharing procedure's notices to a push consumer, signed as its deliveries are
        (``DeliveryFailedError`` if it does not take them)."""
        await self._post(self.consumers[consumer_id], body, NOTICES)

    async def _post(self, consumer: ConnectorConfig, body: bytes, content_type: str,
                    headers: Mapping[str, str] | None = None) -> None:
        assert consumer.endpoint is not None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = consumer.endpoint
        try:
            answer = await send(self._session, "POST", url, body, key=consumer.id,
                                secret=self.config.secrets[consumer.id], content_type=content_type,
                                timeout=consumer.push_timeout_seconds, clock=self._clock, extra_headers=headers)
        except UnreachableError as exc:
            raise DeliveryFailedError(f"无法送达 {url} / cannot deliver to {url}: {exc}") from exc
        verdict = classify(answer.status)
        if verdict == "ok":
            return
        if 300 <= answer.status < 400:
            raise DeliveryFailedError(f"接收方要求重定向 {answer.status}，不予跟随 / the consumer answered "
                                      f"{answer.status} (a redirect); pushes are not redirected", final=True)
        raise DeliveryFailedError(f"接收方拒收 / the consumer answered {answer.status}", final=verdict == "fatal")
