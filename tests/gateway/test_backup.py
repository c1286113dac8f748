"""`supex backup` beside a writing gateway, restored the documented way (docs/operations.md), verifies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from gateway.cli import main
from policy import Policy
from tests.backends import Backend, admin, database_url
from tests.gateway.conftest import CONFIG_TEXT, inspection
from tests.gateway.test_store import AMR, JINAN, _ingest


def _config(folder: Path, store: str, name: str) -> Path:
    path = folder / name
    path.write_text(CONFIG_TEXT.replace('store = "sqlite:///supex.db"', f'store = "{store}"'), encoding="utf-8")
    return path


def _restore(backend: Backend, archive: Path, folder: Path, name: str) -> str:
    """Restore ``archive`` as docs/operations.md says (into database ``name`` on PostgreSQL); the
    restored store's setting."""
    if backend.name == "sqlite":
        restored = folder / "restored.db"
        shutil.copy(archive, restored)  # a SQLite backup is the database itself
        return f"sqlite:///{restored}"
    admin(f"CREATE DATABASE {name}")
    done = subprocess.run(["pg_restore", "--no-owner", f"--dbname={database_url(name)}", str(archive)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return database_url(name)


def test_a_backup_taken_while_writing_restores_and_verifies(
        backend: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if backend.name == "postgresql" and not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump and pg_restore (PostgreSQL's client tools) are not on PATH")
    store = backend.open(log_hash="sm3")
    store.routing.catch_up(Policy([AMR, JINAN], []))
    _ingest(store, *(inspection(n) for n in range(40)))
    config = _config(tmp_path, backend.setting, "supex.toml")
    writing = threading.Event()

    def write() -> None:  # a gateway going on meanwhile
        for n in range(100, 140):
            _ingest(store, inspection(n))
            writing.set()

    writer = threading.Thread(target=write)
    writer.start()
    writing.wait(10)
    archive = tmp_path / "supex.backup"
    assert main(["backup", "--config", str(config), str(archive)]) == 0
    writer.join()
    store.close()
    printed = capsys.readouterr().out
    checkpoint = re.search(r"--checkpoint (\d+:[0-9a-f]{64})", printed)
    assert checkpoint is not None and archive.stat().st_size > 0
    assert archive.stat().st_mode & 0o777 == 0o600  # the whole store: its user's alone
    assert main(["backup", "--config", str(config), str(archive)]) == 1  # never overwritten

    name = f"supex_restored_{uuid.uuid4().hex[:8]}"
    restored = _config(tmp_path, _restore(backend, archive, tmp_path, name), "restored.toml")
    try:
        assert main(["log", "verify", "--config", str(restored), "--checkpoint", checkpoint[1], "--json"]) == 0
        outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert outcome["ok"] is True and outcome["entries"] >= int(checkpoint[1].split(":")[0])
        assert main(["log", "query", "--config", str(config), "--event", "audit_query", "--json"]) == 0
        reasons = [json.loads(line)["reason"] for line in capsys.readouterr().out.splitlines()]
        assert "cli backup to supex.backup" in reasons  # the copy leaving the system is on record
    finally:
        if backend.name == "postgresql":
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
