"""Payloads sealed at rest: important and core data (and every rejected record) sealed under the
key ring's current key, opened when read, counted by key, and sealed again under a new key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from gateway.encryption import SEALED_GRADES, DataCipher, is_sealed
from gateway.exceptions import DataKeyError
from gateway.exchange_log import LogEntry
from gateway.store.base import Database

__all__ = ["QUARANTINED", "Sealed", "change_binding", "quarantine_binding"]

QUARANTINED = b"SPXQ"  # a sealed quarantine row: its errors (length, JSON) and then its payload
# the payloads rotation seals again: those under another key than the current one, or none
_UNDER_OTHER_KEYS = {
    "changes": "SELECT seq, payload FROM changes WHERE grade IN ('important', 'core') AND seq > ? "
               "AND (key_id IS NULL OR key_id != ?) ORDER BY seq LIMIT ?",
    "quarantine": "SELECT id, payload, batch_id, idx FROM quarantine WHERE id > ? "
                  "AND (key_id IS NULL OR key_id != ?) ORDER BY id LIMIT ?",
}


def change_binding(seq: int) -> bytes:
    """What a stored version's sealed payload is bound to: its row."""
    return b"changes:%d" % seq


def quarantine_binding(batch_id: str, position: int) -> bytes:
    """What a quarantined record's sealed payload is bound to: its batch and place in it."""
    return f"quarantine:{batch_id}:{position}".encode()


class Sealed:
    """Sealing and opening payloads with the store's key ring (``None``: nothing is sealed)."""

    def __init__(self, store: Database, cipher: DataCipher | None) -> None:
        self.store, self.cipher = store, cipher

    def seal(self, payload: bytes, grade: str, bound_to: bytes) -> tuple[bytes, str | None]:
        """The payload as stored: sealed with its key id where it is important or core data (rejected
        records count as such: nobody has checked what they hold) and a key ring is configured."""
        if self.cipher is None or grade not in SEALED_GRADES:
            return payload, None
        return self.cipher.seal(payload, bound_to), self.cipher.current

    def open(self, payload: bytes, bound_to: bytes) -> bytes:
        """A stored payload as it was given (opened if sealed)."""
        if not is_sealed(payload):
            return bytes(payload)
        if self.cipher is None:
            raise DataKeyError("存储中的数据已加密，但未配置数据密钥 / a payload is sealed but no data key is "
                               "configured")
        return self.cipher.open(payload, bound_to)

    def record(self, seq: int, version: int, payload: bytes) -> dict[str, Any]:
        """A stored version as the record it is (opened if sealed), with its version and seq."""
        return {**orjson.loads(self.open(payload, change_binding(seq))), "version": version, "seq": seq}

    def quarantined(self, errors: list[dict[str, Any]], payload: bytes, batch_id: str,
                    position: int) -> tuple[str, bytes, str | None]:
        """A rejected record's errors and payload as stored. Sealed (as core data: nobody has checked
        what it holds), its errors are sealed with it, and only their codes and paths stay readable:
        a message may quote the offending value (a code, a USCC)."""
        if self.cipher is None:
            return orjson.dumps(errors).decode(), payload, None
        readable = [{"path": e.get("path", ""), "code": e.get("code", "")} for e in errors]
        details = orjson.dumps(errors)
        sealed, key = self.seal(QUARANTINED + len(details).to_bytes(4, "big") + details + payload, "core",
                                quarantine_binding(batch_id, position))
        return orjson.dumps(readable).decode(), sealed, key

    def check_keys(self) -> None:
        """Refuse to serve payloads sealed under keys the ring does not hold (the gateway's start-up)."""
        with self.store.query() as db:
            sealed = {row[0] for row in db.execute(
                "SELECT DISTINCT key_id FROM changes WHERE grade IN ('important', 'core') AND key_id IS NOT NULL")}
            sealed |= {row[0] for row in db.execute("SELECT DISTINCT key_id FROM quarantine WHERE key_id IS NOT NULL")}
        missing = sorted(sealed - set(self.cipher.key_ids if self.cipher else ()))
        if missing:
            raise DataKeyError(f"存储中有数据由未配置的密钥加密 / the store holds payloads sealed with keys {missing} "
                               "that the configured key ring does not hold (data_key_env / data_key_file)")

    def key_status(self) -> dict[str, dict[str, int]]:
        """How many payloads each key seals (``plaintext``: important or core data not sealed), by table."""
        def count(sql: str) -> dict[str, int]:
            with self.store.query() as db:
                return {key or "plaintext": n for key, n in db.execute(sql)}
        return {"changes": count("SELECT key_id, count(*) FROM changes WHERE grade IN ('important', 'core') "
                                 "GROUP BY key_id"),
                "quarantine": count("SELECT key_id, count(*) FROM quarantine GROUP BY key_id")}

    def rotate_keys(self, by: str, batch: int = 500) -> Iterator[int]:
        """Seal again under the current key whatever another key (or none) seals, a batch a transaction,
        yielding the running count. The gateway goes on meanwhile; after a crash, running it again
        goes on from where it stopped (what is left is what is not yet under the current key)."""
        cipher = self.cipher
        if cipher is None:
            raise DataKeyError("未配置数据密钥 / no data key is configured: set data_key_env or data_key_file")
        done = 0
        for table, sql in _UNDER_OTHER_KEYS.items():
            after = 0
            while True:
                with self.store.transaction() as db:
                    rows = db.execute(sql, (after, cipher.current, batch)).fetchall()
                    updates = []
                    for row in rows:
                        bound = change_binding(row[0]) if table == "changes" else quarantine_binding(row[2], row[3])
                        updates.append((cipher.seal(self.open(row[1], bound), bound), cipher.current, row[0]))
                    key = "seq" if table == "changes" else "id"
                    db.executemany(f"UPDATE {table} SET payload = ?, key_id = ? WHERE {key} = ?", updates)
                if not rows:
                    break
                after, done = rows[-1][0], done + len(rows)
                yield done
        with self.store.transaction() as db:
            self.store.append(db, [LogEntry("config_changed", self.store.now(), counterpart=by,
                                            reason=f"data keys rotated: {done} payloads sealed again under key "
                                                   f"{cipher.current} ({cipher.algorithm})")])
