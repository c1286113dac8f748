"""Encryption at rest: important and core payloads sealed, keys in a ring, rotation that resumes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import ConnectorConfig
from gateway.encryption import DataCipher, generate_key, is_sealed, load_key_ring, sm4_available
from gateway.exceptions import ConfigError, DataKeyError
from gateway.flow.prepare import RecordPreparer
from gateway.store import SQLiteStore, SQLStore
from policy import Policy
from tests.backends import Backend
from tests.backends import page as inbox_page
from tests.gateway.conftest import CONFIG_TEXT, SECRETS, inspection

AMR = ConnectorConfig(id="amr", name="x", department_code="11370000FE1KM2U90Y", region_code="370000",
                      produces=["inspection"])
JINAN = ConnectorConfig(id="jinan", name="y", department_code="11370100MB2857939K", region_code="370100",
                        consumes=["inspection"])
POLICY = Policy([AMR, JINAN], [])
KEY_A, KEY_B = base64.b64decode(generate_key()), base64.b64decode(generate_key())
MARKER = "绝密标记QX7Z9"


def _store(backend: Backend, *keys: bytes) -> SQLStore:
    store = backend.open(cipher=DataCipher(keys) if keys else None)
    store.routing.catch_up(POLICY)
    return store


def _important(n: int, grade: str = "important") -> dict[str, Any]:
    record = inspection(n)
    record["grade"] = grade
    record["data"]["action_name"] = f"{MARKER}-{n}"
    return record


def _push(store: SQLStore, *records: dict[str, Any]) -> list[Any]:
    prepared = RecordPreparer(log_hash="sha256", max_records=100).prepare(
        AMR, None, json.dumps(list(records), ensure_ascii=False).encode(), "application/json", store.now())
    return store.records.ingest("amr", f"b-{records[0]['record_id']}", prepared.incoming, prepared.rejected,
                                policy=POLICY)


def _at_rest(backend: Backend) -> bytes:
    """What the database holds: SQLite's files (with the WAL) as they are on disk; PostgreSQL's
    stored payloads as the server gives them back."""
    if backend.name == "sqlite":
        return b"".join(p.read_bytes() for p in Path(backend.location).parent.glob("s.db*"))
    return b"".join(bytes(row[0]) for table in ("changes", "quarantine")
                    for row in backend.rows(f"SELECT payload FROM {table}"))


@pytest.mark.parametrize("sm4", [True, False])
def test_a_sealed_payload_opens_only_with_its_key_and_in_its_row(sm4: bool) -> None:
    if sm4 and not sm4_available():
        pytest.skip("this OpenSSL build has no SM4")
    cipher = DataCipher([KEY_A], prefer_sm4=sm4)
    assert cipher.algorithm == ("sm4-gcm" if sm4 else "aes-256-gcm")
    sealed = cipher.seal(b'{"a": 1}', b"changes:7")
    assert is_sealed(sealed) and b'"a"' not in sealed
    assert cipher.open(sealed, b"changes:7") == b'{"a": 1}'
    assert DataCipher.key_id_of(sealed) == cipher.current
    with pytest.raises(DataKeyError, match="moved to another row"):
        cipher.open(sealed, b"changes:8")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DataKeyError, match="altered"):
        cipher.open(tampered, b"changes:7")
    with pytest.raises(DataKeyError, match=f"sealed with key {cipher.current}"):
        DataCipher([KEY_B]).open(sealed, b"changes:7")
    assert DataCipher([KEY_B, KEY_A]).open(sealed, b"changes:7") == b'{"a": 1}'  # older keys still open


def test_the_key_ring_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    a, b = generate_key(), generate_key()
    ring = load_key_ring("K", None, {"K": f"{b}, {a}"})
    assert ring is not None and ring.key_ids[0] == DataCipher([base64.b64decode(b)]).current
    (tmp_path / "keys").write_text(f"# data keys, the current first\n{a}\n", encoding="utf-8")
    from_file = load_key_ring(None, tmp_path / "keys", {})
    assert from_file is not None and from_file.current == DataCipher([base64.b64decode(a)]).current
    assert load_key_ring(None, None, {}) is None
    for environ, message in (({}, "K is not set"), ({"K": "not base64!"}, "not base64"),
                             ({"K": base64.b64encode(b"short").decode()}, "must be 32 bytes")):
        with pytest.raises(ConfigError, match=message):
            load_key_ring("K", None, environ)


def test_important_and_core_payloads_are_not_on_disk_in_plaintext(backend: Backend) -> None:
    store = _store(backend, KEY_A)
    outcomes = _push(store, _important(1), _important(2, "core"), _important(3, "general"))
    assert [o.status for o in outcomes] == ["accepted"] * 3
    page = inbox_page(store, POLICY, "jinan", None, 10)
    assert [r.record["data"]["action_name"] for r in page.records] == [f"{MARKER}-{n}" for n in (1, 2, 3)]
    store.close()
    disk = _at_rest(backend)
    assert f"{MARKER}-1".encode() not in disk and f"{MARKER}-2".encode() not in disk
    assert f"{MARKER}-3".encode() in disk  # general data is not sealed
    keys = backend.rows("SELECT key_id FROM changes ORDER BY seq")
    assert keys == [(DataCipher([KEY_A]).current,)] * 2 + [(None,)]


def test_quarantined_payloads_are_sealed_too_and_given_back_to_their_producer(backend: Backend) -> None:
    store = _store(backend, KEY_A)
    bad = _important(1)
    bad["data"]["subject"]["cert_no"] = "91370102MA3C4GXX0A"
    _push(store, bad)
    (rejected,) = store.records.rejections("amr", 0, 10)
    assert rejected["record"]["data"]["action_name"] == f"{MARKER}-1"
    store.close()
    assert MARKER.encode() not in _at_rest(backend)


def test_the_errors_of_a_sealed_rejection_are_sealed_but_their_codes_and_paths(backend: Backend) -> None:
    """A message may quote the offending value (here a USCC): at rest only the code and the path are
    readable; the producer gets the whole error back."""
    store = _store(backend, KEY_A)
    bad = _important(1)
    bad["data"]["subject"]["cert_no"] = "91370102MA3C4GXX0A"
    _push(store, bad)
    (rejected,) = store.records.rejections("amr", 0, 10)
    (error,) = [e for e in rejected["errors"] if e["code"] == "uscc_checksum"]
    assert "91370102MA3C4GXX0A" in error["message"]
    store.close()
    (stored,) = backend.rows("SELECT errors FROM quarantine")
    assert "91370102MA3C4GXX0A" not in stored[0] and json.loads(stored[0]) == [
        {"path": e["path"], "code": e["code"]} for e in rejected["errors"]]
    assert b"91370102MA3C4GXX0A" not in _at_rest(backend)


def test_a_payload_moved_to_another_row_does_not_open(backend: Backend) -> None:
    store = _store(backend, KEY_A)
    _push(store, _important(1), _important(2))
    store.close()
    backend.execute("UPDATE changes SET payload = (SELECT payload FROM changes WHERE seq = 1) WHERE seq = 2")
    with pytest.raises(DataKeyError, match="moved to another row"):
        inbox_page(_store(backend, KEY_A), POLICY, "jinan", None, 10)


def test_the_gateway_refuses_a_ring_without_the_keys_of_what_is_stored(backend: Backend) -> None:
    _push(_store(backend, KEY_A), _important(1))
    with pytest.raises(DataKeyError, match="does not hold"):
        _store(backend, KEY_B).sealed.check_keys()
    with pytest.raises(DataKeyError, match="does not hold"):
        _store(backend).sealed.check_keys()
    _store(backend, KEY_B, KEY_A).sealed.check_keys()


def test_rotation_seals_everything_under_the_new_key_and_resumes_after_a_crash(backend: Backend) -> None:
    store = _store(backend)  # before any key: important data in plaintext
    _push(store, _important(1))
    store.close()
    store = _store(backend, KEY_A)
    _push(store, *(_important(n) for n in range(2, 6)))
    store.close()
    rotating = _store(backend, KEY_B, KEY_A)
    new = rotating.sealed.cipher.current  # type: ignore[union-attr]
    steps = rotating.sealed.rotate_keys(by="ops", batch=2)
    assert next(steps) == 2  # then the process dies
    rotating.close()
    again = _store(backend, KEY_B, KEY_A)
    assert list(again.sealed.rotate_keys(by="ops", batch=2)) == [2, 3]  # only what was left
    assert again.sealed.key_status()["changes"] == {new: 5}
    rotated = [e for e in again.log.entries() if e.event == "config_changed"]
    assert rotated[-1].reason is not None and f"under key {new}" in rotated[-1].reason
    again.close()
    after = _store(backend, KEY_B)  # the old key can go
    after.sealed.check_keys()
    assert len(inbox_page(after, POLICY, "jinan", None, 10).records) == 5


def test_the_keys_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "supex.toml"
    config.write_text(CONFIG_TEXT.replace('log_hash = "sm3"', 'log_hash = "sm3"\ndata_key_env = "SUPEX_DATA_KEY"'),
                      encoding="utf-8")
    monkeypatch.setenv("SUPEX_DATA_KEY", base64.b64encode(KEY_A).decode())
    for connector, secret in SECRETS.items():
        monkeypatch.setenv(f"SUPEX_SECRET_{connector.upper()}", secret)
    store = SQLiteStore(str(tmp_path / "supex.db"), log_hash="sm3", cipher=DataCipher([KEY_A]))
    store.routing.catch_up(POLICY)
    _push(store, _important(1), _important(2))
    store.close()
    monkeypatch.setenv("SUPEX_DATA_KEY", f"{base64.b64encode(KEY_B).decode()},{base64.b64encode(KEY_A).decode()}")
    assert main(["keys", "rotate", "--config", str(config)]) == 0
    assert "2 payloads sealed again" in capsys.readouterr().out
    assert main(["keys", "status", "--config", str(config)]) == 0
    assert f"changes: {DataCipher([KEY_B]).current}: 2" in capsys.readouterr().out
    assert main(["keys", "generate"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32
    monkeypatch.delenv("SUPEX_DATA_KEY")
    assert main(["keys", "status", "--config", str(config)]) == 2
    assert "SUPEX_DATA_KEY is not set" in capsys.readouterr().err
