"""What is changed while gateways run, kept in the store for every gateway on it: sharing rules
and connector states changed through the admin API (each change a ``config_changed`` entry), and
whose turn it is to do what one gateway at a time should do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.exchange_log import LogEntry
from gateway.store.base import Database, upsert

__all__ = ["Runtime"]


class Runtime:
    """Rules, connector states and turns changed at run time."""

    def __init__(self, store: Database) -> None:
        self.store = store

    def rules(self) -> dict[str, dict[str, Any]]:
        """Sharing rules added or changed through the admin API, by id."""
        with self.store.query() as db:
            rows = db.execute("SELECT id, body FROM runtime_rules ORDER BY id").fetchall()
        return {r[0]: orjson.loads(r[1]) for r in rows}

    def connector_states(self) -> dict[str, bool]:
        """Connectors disabled or enabled again through the admin API: id -> enabled."""
        with self.store.query() as db:
            return {r[0]: bool(r[1]) for r in db.execute("SELECT id, enabled FROM runtime_connectors")}

    def save_connector_state(self, connector: str, enabled: bool, by: str) -> None:
        """Keep a connector disabled (or enabled again) at run time, with its ``config_changed`` entry."""
        at = self.store.now()
        with self.store.transaction() as db:
            db.execute(upsert("runtime_connectors", ("id", "enabled", "changed_at"), 1), (connector, int(enabled), at))
            self.store.append(db, [LogEntry("config_changed", at, connector=connector, counterpart=by,
                                            reason="connector enabled" if enabled else "connector disabled")])

    def save_rule(self, rule: Mapping[str, Any], by: str, change: str) -> None:
        """Keep a rule added, updated or disabled at run time, with its ``config_changed`` entry."""
        at = self.store.now()
        with self.store.transaction() as db:
            db.execute(upsert("runtime_rules", ("id", "body", "changed_at"), 1),
                       (rule["id"], orjson.dumps(rule, default=str).decode(), at))
            self.store.append(db, [LogEntry("config_changed", at, counterpart=by, rule=str(rule["id"]),
                                            reason=change)])

    def last_change(self) -> int:
        """The seq of the log's latest ``config_changed`` entry (0: none): when it moves, a rule or a
        connector's state may have been changed, perhaps by another gateway on the database."""
        with self.store.query() as db:
            row = db.execute("SELECT max(seq) FROM exchange_log WHERE event = 'config_changed'").fetchone()
        return int(row[0] or 0)

    def take_turn(self, name: str, holder: str, now: float, hold: float) -> bool:
        """Whether ``holder`` may do ``name`` now (until ``now + hold``): it is nobody's, already
        ``holder``'s, or its holder has not renewed it in time (a gateway that died)."""
        with self.store.transaction(serial=False) as db:
            db.execute("INSERT INTO turns (name, holder, until) VALUES (?, ?, 0) ON CONFLICT DO NOTHING",
                       (name, holder))
            taken = db.execute("UPDATE turns SET holder = ?, until = ? WHERE name = ? AND (holder = ? OR until <= ?)",
                               (holder, now + hold, name, holder, now)).rowcount
        return bool(taken == 1)
