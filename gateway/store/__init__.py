"""The store behind one interface: records, quarantine, deliveries, consumer cursors and the exchange log.

``SQLiteStore`` is the embedded default (one WAL file, fsync on every commit); ``PostgresStore``
lets several gateways share one database. Both run the same logic, one module a concern
(``records``, ``routing``, ``outbox``, ``inbox``, ``runtime``, ``log``, ``sealed``; see
``gateway.store.sql``): everything a request needs happens in one transaction, including its
exchange-log entries.
"""

from gateway.encryption import DataCipher
from gateway.store.base import DEFAULT_LEASE_SECONDS, Clock, utc_now
from gateway.store.model import (
    InboxPage,
    Incoming,
    IngestOutcome,
    LogFilter,
    Quarantined,
    StoredRecord,
)
from gateway.store.postgres import PostgresStore, is_postgres_url, redacted
from gateway.store.sql import SQLStore
from gateway.store.sqlite import SQLiteStore

__all__ = [
    "InboxPage",
    "Incoming",
    "IngestOutcome",
    "LogFilter",
    "PostgresStore",
    "Quarantined",
    "SQLStore",
    "SQLiteStore",
    "StoredRecord",
    "is_postgres_url",
    "open_store",
    "shown",
]


def shown(location: str) -> str:
    """A configured ``store`` as it may be printed: a database URL without its password."""
    return redacted(location) if is_postgres_url(location) else location


def open_store(location: str, *, log_hash: str, clock: Clock = utc_now, cipher: DataCipher | None = None,
               lease_seconds: float = DEFAULT_LEASE_SECONDS) -> SQLStore:
    """Open the store a configuration names: a PostgreSQL URL, or else a SQLite file (sealing
    important and core payloads with ``cipher`` if given)."""
    kind = PostgresStore if is_postgres_url(location) else SQLiteStore
    return kind(location, log_hash=log_hash, clock=clock, cipher=cipher, lease_seconds=lease_seconds)
