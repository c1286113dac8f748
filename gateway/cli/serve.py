"""``supex serve`` and ``supex check-config``: the gateway run, and its configuration checked."""

from __future__ import annotations

import argparse
import gc
import os
import sys

import structlog

from gateway.config import load_config
from gateway.flow.checkpoints import load_log_key
from gateway.http.app import create_app
from gateway.http.serving import raise_open_files_limit, run_gateway
from gateway.observability import configure_logging
from gateway.safety import check_before_serving
from gateway.store import shown
from gateway.terminal import EXIT_OK, counted

__all__ = ["check_config", "serve"]

log = structlog.get_logger("supex.serve")


def serve(args: argparse.Namespace) -> int:
    """``supex serve``: run the gateway until interrupted."""
    os.umask(0o077)  # the store, its WAL, backups, reports and moved files: the gateway's user's alone
    config = load_config(args.config)
    configure_logging()
    warnings = check_before_serving(config)
    for warning in warnings:
        log.warning("unsafe_setting", reason=warning)
    soft, hard = raise_open_files_limit()
    log.info("open_files_limit", soft=soft, hard=hard)
    app = create_app(config)
    # Long-lived caches (identifiers, regions, nonces) make full collections slow; collect the young
    # generations less often and keep what start-up built out of the collector's way.
    gc.set_threshold(50_000, 50, 1000)
    gc.freeze()
    # The store thread needs the GIL back after each SQLite call; with the default 5 ms switch
    # interval a busy event loop starves it and commits queue up behind each other.
    sys.setswitchinterval(0.0005)
    run_gateway(app, config.gateway, on_ready=lambda: print(
        f"supex serving on http://{config.gateway.listen} (store {shown(config.gateway.store)}, open files up to "
        f"{soft})", file=sys.stderr))
    return EXIT_OK


def check_config(args: argparse.Namespace) -> int:
    """``supex check-config``: validate a configuration without starting anything."""
    config = load_config(args.config, need_secrets=not args.no_secrets)
    ids = ", ".join(c.id for c in config.connector) or "none"
    print(f"{args.config}: OK — {counted(len(config.connector), 'connector')} ({ids}), "
          f"{counted(len(config.auditor), 'auditor')}, {counted(len(config.admin), 'admin')}, "
          f"{counted(len(config.sharing), 'sharing rule')}, store {shown(config.gateway.store)}")
    for connector, source in config.secret_sources.items():  # where each secret came from, never the secret
        print(f"  secret of {connector}: {source}")
    terms = config.terms
    print(f"  procedure: {counted(len(terms.obligations), 'obligation')}, timeliness of "
          f"{', '.join(f'{t} {v}' for t, v in terms.timeliness.items()) or 'no record type'}; working days known "
          f"until {terms.calendar.known_until} (add [calendar.{terms.calendar.known_until.year + 1}] before then)")
    key_path = config.key_path()
    if key_path.exists():
        key = load_log_key(config)  # refused here, as at start, if it is not the key [log] asks for
        print(f"  log key: {key.algorithm} {key.key_id.hex()} for {key.name} ({key_path}); "
              f"{counted(len(config.log.witness), 'witness')}")
    else:
        print(f"  log key: none yet at {key_path}: the first start makes one ({config.log.signature}) "
              "(or `supex keys create`)")
    return EXIT_OK
