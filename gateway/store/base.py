"""What every concern of the store shares: the database it works through (``Database``: what
``SQLStore`` gives each concern), the connection it writes with, the clock, small SQL helpers,
the time the one writer is held, files created private."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from gateway.exceptions import StoreUnavailableError
from gateway.exchange_log import GENESIS, Body, LogEntry, Stretch

if TYPE_CHECKING:
    from gateway.store.tree import LogTree

__all__ = ["DEFAULT_LEASE_SECONDS", "Clock", "Connection", "Database", "WriterTimes", "create_private", "log_head",
           "new_backup_file", "pruned_through", "upsert", "utc_now"]

Clock = Callable[[], dt.datetime]
DEFAULT_LEASE_SECONDS = 60.0  # how long a claimed push delivery is another gateway's to leave alone


@dataclass
class WriterTimes:
    """Seconds spent waiting for the serialised writer and holding it (statements and commit),
    summed over this store's writes: how busy the one writer of a database is, which bounds what
    more gateways on it can add."""

    waited: float = 0.0
    held: float = 0.0

    @contextmanager
    def timing(self) -> Iterator[Callable[[], None]]:
        """Time one write: call the given function once the writer is taken; both sums are added
        when the block ends (after the commit)."""
        started = time.perf_counter()
        taken: list[float] = []
        try:
            yield lambda: taken.append(time.perf_counter())
        finally:
            if taken:
                self.waited += taken[0] - started
                self.held += time.perf_counter() - taken[0]


class Connection(Protocol):
    """What the store's logic needs of a connection: ``sqlite3.Connection`` has it as it is."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Database(Protocol):
    """What a concern of the store needs of the database: transactions and reads, the clock, and
    appending to the exchange log within a transaction (``SQLStore`` over a backend)."""

    CLAIM_SUFFIX: ClassVar[str]
    location: str
    log_hash: str
    lease_seconds: float
    clock: Clock

    def transaction(self, serial: bool = True, durable: bool = True) -> AbstractContextManager[Connection]: ...

    def query(self) -> AbstractContextManager[Connection]: ...

    def reading(self) -> AbstractContextManager[Connection]: ...

    @property
    def tree(self) -> LogTree: ...

    def verify_worker(self) -> Callable[[str, str, int, int, int], Stretch] | None: ...

    @staticmethod
    def bodies(db: Connection, first: int, last: int) -> list[Body] | None: ...

    def now(self) -> str: ...

    def append(self, db: Connection, entries: Sequence[LogEntry]) -> int: ...


def utc_now() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


def upsert(table: str, columns: tuple[str, ...], keys: int) -> str:
    """``INSERT`` a row of ``columns`` into ``table``, replacing the row with the same first ``keys`` columns."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[keys:])
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(columns[:keys])}) DO UPDATE SET {updates}")


def log_head(db: Connection) -> tuple[int, str]:
    """The last seq and hash of the exchange log (``0`` and the genesis hash when it is empty)."""
    row = db.execute("SELECT seq, hash FROM exchange_log ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def pruned_through(db: Connection) -> tuple[int, str]:
    """Up to which seq entries were archived and pruned from the exchange log, and that entry's hash
    (``0`` and the genesis hash if none were)."""
    row = db.execute("SELECT seq, hash FROM log_pruned ORDER BY seq DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def create_private(path: Path) -> int:
    """Create ``path`` new, for writing, readable by this user alone (a store, a backup, a key);
    its descriptor. ``FileExistsError`` if anything is there already, a link planted there too."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def new_backup_file(target: Path) -> None:
    """Create ``target`` empty for a backup to be written into; ``StoreUnavailableError`` if it exists."""
    try:
        os.close(create_private(target))
    except FileExistsError as exc:
        raise StoreUnavailableError(f"备份文件已存在 / {target} exists: name a new file") from exc
