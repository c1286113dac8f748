"""Every command README.md shows, run as a newcomer would run it: on a copy of the example
configuration, against a gateway started as ``make run`` starts it. Each gives a true answer —
exit 0, or 1 where it reports an invalid record — and never a traceback."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent
# the commands of the README's examples, in order, as typed after its "$ " prompt
COMMANDS = [line[2:] for block in re.findall(r"```\n(.*?)```", README, re.S)
            for line in block.splitlines() if line.startswith("$ ")]
REPORTS_RECORDS = ("supex map ", "supex validate ")  # exit 1: a record is invalid (said, with its errors)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """A folder holding the example configuration (on a free port), its secrets and the samples,
    with the gateway serving it as ``make run`` does."""
    folder = tmp_path_factory.mktemp("readme")
    port = _free_port()
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8").replace("127.0.0.1:8440", f"127.0.0.1:{port}")
    (folder / "config.example.toml").write_text(text, encoding="utf-8")
    shutil.copy(ROOT / "secrets.example.toml", folder / "secrets.example.toml")
    shutil.copytree(ROOT / "connectors" / "samples", folder / "connectors" / "samples")
    (folder / "var").mkdir(mode=0o700)
    subprocess.run([BIN / "supex", "keys", "generate", "--output", "var/data.key"], cwd=folder, check=True,
                   capture_output=True)
    log = (folder / "gateway.log").open("wb")
    gateway = subprocess.Popen([BIN / "supex", "serve", "--config", "config.example.toml"], cwd=folder, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if gateway.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((folder / "gateway.log").read_text()) from None
                time.sleep(0.05)  # waiting for the process to listen, not timing a behaviour
        yield folder, port
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)
        log.close()


def test_the_readme_shows_commands() -> None:
    assert len(COMMANDS) >= 15 and any(c.startswith(".venv/bin/supex push") for c in COMMANDS)


def test_every_command_of_the_readme_gives_a_true_answer(example: tuple[Path, int]) -> None:
    folder, port = example
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for command in COMMANDS:
        typed = command.split("  #", 1)[0].strip()
        run = typed.replace(".venv/bin/supex", str(BIN / "supex")).replace("127.0.0.1:8440", f"127.0.0.1:{port}")
        done = subprocess.run(run, shell=True, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        allowed = (0, 1) if typed.removeprefix(".venv/bin/").startswith(REPORTS_RECORDS) else (0,)
        assert done.returncode in allowed, f"{typed}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, f"{typed}\n{done.stderr[-2000:]}"
    assert (folder / "penalties.xml").read_text(encoding="utf-8").count("</XZCF>") == 2
    assert (folder / "jinan.ndjson").read_text(encoding="utf-8").count("\n") >= 1
