"""What the store-reading commands share: the configured store opened, and each command's own
``audit_query`` entry."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from gateway.config import Config, load_config
from gateway.encryption import DataCipher
from gateway.exceptions import ConfigError
from gateway.exchange_log import audit_query
from gateway.store import LogFilter, SQLStore, is_postgres_url, open_store

__all__ = ["FILTER_ARGS", "audited", "configured_store", "log_filter", "open_configured_store", "store_of"]


def store_of(args: argparse.Namespace) -> Any:
    """The store the command's ``--config`` names (it must exist)."""
    return configured_store(args)[1]


def configured_store(args: argparse.Namespace) -> tuple[Config, Any]:
    """The command's ``--config`` (secrets not needed) and the store it names (it must exist)."""
    config = load_config(args.config, need_secrets=False)
    return config, open_configured_store(config, required=True)


def open_configured_store(config: Config, *, required: bool, cipher: DataCipher | None = None) -> SQLStore | None:
    """The configured store, if there is one (a SQLite file that does not exist yet is none: with
    ``required``, that is an error); a PostgreSQL database is always opened."""
    location = config.store_path()
    if not is_postgres_url(location) and not Path(location).exists():
        if required:
            raise ConfigError(f"存储不存在 / no store at {location}")
        return None
    return open_store(location, log_hash=config.gateway.log_hash, cipher=cipher)


FILTER_ARGS = ("since", "until", "connector", "counterpart", "record_type", "record_id", "event", "rule")


def log_filter(args: argparse.Namespace, config: Config, store: SQLStore) -> LogFilter:
    """The exchange-log filter of a command's options, checked (``ConfigError``, exit 2, for one
    that cannot be read or names what does not exist: it would quietly match nothing)."""
    try:
        return LogFilter.of({name: getattr(args, name) for name in FILTER_ARGS},
                            is_connector=store.log.knows(config.connectors()),
                            names={name: "--" + name.replace("_", "-") for name in FILTER_ARGS})
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def audited(store: Any, args: argparse.Namespace, what: str) -> None:
    """Log the command's own ``audit_query`` entry: who ran which query, from the command line."""
    filters = " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())
                       if k in FILTER_ARGS and v is not None)
    store.log.append([audit_query(store.now(), f"cli:{getpass.getuser()}", f"cli {what} {filters}".strip())])
