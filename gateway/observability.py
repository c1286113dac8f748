"""Metrics (Prometheus text format) and structured logs with secrets and personal data redacted."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

__all__ = ["Metrics", "configure_logging", "new_id", "redact"]

_SECRET_KEYS = re.compile(r"secret|token|authorization|signature|password|key", re.IGNORECASE)
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}\d{3}[0-9Xx](?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


_ID_PREFIX = secrets.token_hex(8)  # this process's, random: ids stay unique across processes and restarts
_ID_COUNTER = itertools.count(1)


def new_id() -> str:
    """A unique id for a request or a batch (32 hex digits), without a system call for randomness
    on every request: a random prefix drawn once per process and a counter."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _render(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event, default=str).decode()


def _scrub(text: str) -> str:
    return _PHONE.sub("[phone]", _ID_NUMBER.sub("[id_no]", text))


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """One processor for all log lines: secret-like keys dropped, ID and phone numbers masked."""
    for key in list(event):
        value = event[key]
        if key != "event" and _SECRET_KEYS.search(key) and key not in ("connector_key",):
            event[key] = "[redacted]"
        elif isinstance(value, str):
            event[key] = _scrub(value)
    return event


def configure_logging(level: int = logging.INFO) -> None:
    """structlog as JSON lines on standard error, configured once at the entry point."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # a 500's traceback, in the line that reports it
            redact,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


class WriterCollector:
    """The store's writer times (``SQLStore.writer``) as two counters, read when scraped."""

    def __init__(self, times: Callable[[], tuple[float, float]]) -> None:
        self._times = times

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The counters as they stand."""
        waited, held = self._times()
        yield CounterMetricFamily("supex_store_writer_wait_seconds", "Time spent waiting for the database's "
                                  "one writer (other gateways' writes, or a command's)", value=waited)
        yield CounterMetricFamily("supex_store_writer_held_seconds", "Time spent holding the database's one "
                                  "writer: its busy fraction bounds what more gateways can add", value=held)


class SourceCollector:
    """Each polled system's and watched folder's failed rounds and rejected records, read when scraped."""

    def __init__(self, statuses: Callable[[], dict[str, Any]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The counters as they stand, a sample a source."""
        failed = CounterMetricFamily("supex_source_failed_rounds", "Rounds of a polled source that failed: a page "
                                     "refused, the system unreachable, or every record rejected", labels=["connector"])
        rejected = CounterMetricFamily("supex_source_rejected_records", "Records read from a source and rejected "
                                       "(quarantined)", labels=["connector"])
        for connector, status in sorted(self._statuses().items()):
            failed.add_metric([connector], getattr(status, "failed_rounds", 0))
            rejected.add_metric([connector], getattr(status, "rejected", 0))
        yield failed
        yield rejected


class Metrics:
    """The gateway's Prometheus metrics in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("supex_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("supex_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.records = Counter("supex_records_total", "Pushed records by outcome", ["status"],
                               registry=self.registry)
        self.commit = Histogram("supex_store_commit_seconds", "Time to commit a batch durably",
                                registry=self.registry,
                                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.log_entries = Gauge("supex_exchange_log_entries", "Entries in the exchange log",
                                 registry=self.registry)
        self.deliveries = Counter("supex_deliveries_total", "Pushed deliveries by consumer and outcome",
                                  ["consumer", "status"], registry=self.registry)
        self.overdue = Counter("supex_overdue_deliveries_total", "Deliveries later than their rule's deliver_within",
                               ["consumer"], registry=self.registry)
        self.procedure_overdue = Counter("supex_procedure_overdue_total", "Sharing requests, objections to records "
                                         "and feedback duties that ran past their deadline (escalated)", ["kind"],
                                         registry=self.registry)
        self.procedure_steps = Counter("supex_procedure_steps_total", "Steps of sharing requests and objections "
                                       "by event", ["event"], registry=self.registry)
        self.refusals = Counter("supex_auth_refusals_total", "Refused requests by status", ["status"],
                                registry=self.registry)
        self.auth_failures = Counter("supex_auth_failures_total", "Failed attempts at a secret (bearer tokens, "
                                     "console sign-ins), which are throttled", ["kind"], registry=self.registry)
