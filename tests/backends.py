"""The store's backends for tests: a SQLite file, or a throwaway PostgreSQL database.

Each PostgreSQL test gets a database of its own, copied from a template that holds the
migrations (``CREATE DATABASE … TEMPLATE``: milliseconds), dropped afterwards. Where no server
answers at ``SUPEX_TEST_POSTGRES`` (default: the local one as ``postgres``), the tests that need
one are skipped, saying so.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gateway.flow.sharing import share
from gateway.store import SQLStore, open_store
from gateway.store.model import InboxPage
from policy import Policy, local_today

ADMIN_URL = os.environ.get("SUPEX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here (``None``: they can)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return (f"no PostgreSQL server reachable at {ADMIN_URL} ({str(exc).strip().splitlines()[0]}); "
                "set SUPEX_TEST_POSTGRES to one where CREATE DATABASE is allowed")
    return None


def admin(sql: str) -> None:
    """Run a statement on the test server's maintenance database (outside a transaction)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type] # test-made statements with generated names only


class Databases:
    """Throwaway databases copied from one migrated template."""

    def __init__(self) -> None:
        self.template = f"supex_template_{uuid.uuid4().hex[:8]}"
        admin(f"CREATE DATABASE {self.template}")
        open_store(database_url(self.template), log_hash="sha256").close()
        self.made: list[str] = []

    def new(self) -> str:
        """A new migrated database's URL."""
        name = f"supex_test_{uuid.uuid4().hex[:12]}"
        admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        self.made.append(name)
        return database_url(name)

    def drop(self, url: str) -> None:
        """Drop a database made by ``new``, whoever is still connected."""
        admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def close(self) -> None:
        """Drop the template, and any database made that is still there."""
        for name in [*self.made, self.template]:
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Backend:
    """Where a test's store lives, and raw access to it behind the store's back (to tamper with it)."""

    name: str
    location: str

    @property
    def setting(self) -> str:
        """The ``store`` a gateway's configuration names it by."""
        return self.location if self.name == "postgresql" else f"sqlite:///{self.location}"

    def open(self, log_hash: str = "sha256", **options: Any) -> SQLStore:
        """The store, opened (again) on this location."""
        return open_store(self.location, log_hash=log_hash, **options)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> None:
        """Run a statement and commit it."""
        if self.name == "sqlite":
            with sqlite3.connect(self.location) as connection:
                connection.execute(sql, parameters)
            connection.close()
        else:
            with psycopg.connect(self.location, autocommit=True) as connection:
                connection.execute(sql.replace("?", "%s"), parameters)  # type: ignore[arg-type]

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """The rows a query gives."""
        if self.name == "sqlite":
            with sqlite3.connect(self.location) as connection:
                found = connection.execute(sql).fetchall()
            connection.close()
            return found
        with psycopg.connect(self.location) as connection:
            return connection.execute(sql).fetchall()  # type: ignore[arg-type]

    def fail_log_appends(self, after_seq: int) -> None:
        """Make every exchange-log insert past ``after_seq`` fail, as a full disk would."""
        if self.name == "sqlite":
            self.execute(f"CREATE TRIGGER fail BEFORE INSERT ON exchange_log WHEN NEW.seq > {after_seq} "
                         "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        else:
            self.execute("CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                         f"IF NEW.seq > {after_seq} THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$")
            self.execute("CREATE TRIGGER fail BEFORE INSERT ON exchange_log FOR EACH ROW EXECUTE FUNCTION fail()")

    def heal_log_appends(self) -> None:
        """Undo ``fail_log_appends``."""
        self.execute("DROP TRIGGER fail" if self.name == "sqlite" else "DROP TRIGGER fail ON exchange_log")


def backend_for(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The backend a parametrised test asked for (``request.param``), made for it and cleared after."""
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "s.db"))
        return
    if (reason := postgres_unavailable()) is not None:
        pytest.skip(reason)
    databases: Databases = request.getfixturevalue("postgres_databases")
    url = databases.new()
    try:
        yield Backend("postgresql", url)
    finally:
        databases.drop(url)


def page(store: SQLStore, policy: Policy, consumer: str, after: int | None, limit: int) -> InboxPage:
    """The next page of ``consumer``'s inbox, shared under ``policy`` as the gateway's inbox does."""
    today = local_today(store.clock())
    return store.inbox.page(consumer, after, limit, per_day=policy.read_limit(consumer),
                            share=lambda record: share(policy, record, consumer, today, store.log_hash))

