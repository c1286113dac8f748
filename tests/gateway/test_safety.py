"""What `supex serve` refuses to start with — no data key while connectors produce records, the
published demonstration credentials — and what it warns of when told to start all the same."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from gateway.config import Config, load_config
from gateway.exceptions import ConfigError
from gateway.safety import DEMO_SECRETS, at_rest_warnings, check_before_serving
from tests.gateway.conftest import CONFIG_TEXT, SECRETS
from tests.gateway.test_serve import _free_port

SUPEX = str(Path(sys.executable).parent / "supex")
ENV = {f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()}
KEY = base64.b64encode(b"k" * 32).decode()
UNSAFE = CONFIG_TEXT.replace("allow_plaintext_at_rest = true  # test records, on a throwaway store\n", "")


def _load(tmp_path: Path, text: str, **environ: str) -> Config:
    (tmp_path / "supex.toml").write_text(text, encoding="utf-8")
    return load_config(tmp_path / "supex.toml", environ={**ENV, **environ})


def test_no_data_key_while_connectors_produce_is_refused_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no data key.*amr, eo, dr, ip.*allow_plaintext_at_rest"):
        check_before_serving(_load(tmp_path, UNSAFE))


def test_with_a_data_key_or_nothing_produced_there_is_nothing_to_refuse(tmp_path: Path) -> None:
    keyed = UNSAFE.replace('log_hash = "sm3"', 'log_hash = "sm3"\ndata_key_env = "TEST_DATA_KEY"')
    assert check_before_serving(_load(tmp_path, keyed, TEST_DATA_KEY=KEY)) == []
    consumers_only = UNSAFE.split("[[connector]]")[0] + "[[connector]]" + UNSAFE.split("[[connector]]")[2]
    assert "jinan" in consumers_only and "produces" not in consumers_only
    assert check_before_serving(_load(tmp_path, consumers_only)) == []


def test_allowed_plaintext_is_warned_of_at_every_start(tmp_path: Path) -> None:
    config = _load(tmp_path, CONFIG_TEXT)
    assert config.gateway.allow_plaintext_at_rest
    (warning,) = check_before_serving(config)
    assert "no data key" in warning and warning == at_rest_warnings(config)[0]


@pytest.mark.parametrize("who", ["connector", "auditor", "admin", "edited"])
def test_demonstration_credentials_are_refused_naming_who_holds_one(tmp_path: Path, who: str) -> None:
    text, environ = CONFIG_TEXT, {}
    if who == "connector":
        environ = {"SUPEX_SECRET_JINAN": sorted(DEMO_SECRETS)[0]}
    elif who == "edited":  # a demonstration secret edited a little is one still
        environ = {"SUPEX_SECRET_JINAN": "demo-secret-jinan-change-me-0002"}
    else:
        digest = {"auditor": "71ac0c0412377117e89e0cad9729cbe8431230db2574a4a10eec8e2554505aff",
                  "admin": "7365fb791cd885b33793a8e32ceaf858ffaf640569212d4a856640d5d9ef35dc"}[who]
        name = "sec" if who == "auditor" else "ops"
        lines = text.split("\n")
        at = lines.index(f'name = "{name}"') + 1
        lines[at] = f'token_sha256 = "{digest}"'
        text = "\n".join(lines)
    config = _load(tmp_path, text, **environ)
    expected = {"connector": "connector 'jinan'", "edited": "connector 'jinan'", "auditor": "auditor 'sec'",
                "admin": "admin 'ops'"}[who]
    with pytest.raises(ConfigError, match=f"{expected} holds a demonstration secret"):
        check_before_serving(config)
    allowed = _load(tmp_path, text.replace("[gateway]\n", "[gateway]\nallow_demo_secrets = true\n"), **environ)
    assert any(expected in w for w in check_before_serving(allowed))


def test_a_secrets_file_others_may_read_is_a_warning(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("".join(f'{k} = "{v}"\n' for k, v in SECRETS.items()))
    secrets.chmod(0o644)
    text = CONFIG_TEXT.replace("[gateway]\n", '[gateway]\nsecrets_file = "secrets.toml"\n')
    assert any("readable by others (mode 0644)" in w for w in check_before_serving(_load(tmp_path, text)))
    secrets.chmod(0o600)
    assert not any("readable by others" in w for w in check_before_serving(_load(tmp_path, text)))


def _serve(tmp_path: Path, text: str, seconds: float = 20) -> tuple[int | None, str, bytes | None]:
    """`supex serve` for at most ``seconds``: its exit code (None: still serving), what it said, and
    its /healthz answer if it served."""
    port = _free_port()
    (tmp_path / "supex.toml").write_text(text.replace("127.0.0.1:8440", f"127.0.0.1:{port}"), encoding="utf-8")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([SUPEX, "serve", "--config", str(tmp_path / "supex.toml")], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **ENV})
    health = None
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None and health is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    health = answer.read()
            except OSError:
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
            code = None
        else:
            code = proc.returncode
    return code, log.read_text(errors="replace"), health


def test_serve_refuses_to_start_and_starts_when_told(tmp_path: Path) -> None:
    code, said, _ = _serve(tmp_path, UNSAFE)
    assert code == 2 and "no data key" in said
    code, said, health = _serve(tmp_path, CONFIG_TEXT)
    assert code is None and health is not None and "unsafe_setting" in said and "open_files_limit" in said
    assert "no data key" in orjson.loads(health)["warnings"][0]
    assert oct((tmp_path / "supex.db").stat().st_mode & 0o777) == oct(0o600)
