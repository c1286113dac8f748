"""The store behind one interface: records, quarantine, consumer cursors and the exchange log.

``SQLiteStore`` is the embedded default (one WAL file, fsync on every commit). Everything a
request needs happens in one transaction, including its exchange-log entries.
"""

from gateway.store.model import (
    InboxPage,
    Incoming,
    IngestOutcome,
    LogFilter,
    Quarantined,
    StoredRecord,
)
from gateway.store.sqlite import SQLiteStore, open_store

__all__ = [
    "InboxPage",
    "Incoming",
    "IngestOutcome",
    "LogFilter",
    "Quarantined",
    "SQLiteStore",
    "StoredRecord",
    "open_store",
]
