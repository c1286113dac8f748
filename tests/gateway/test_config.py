"""The configuration: strict, with secrets from the environment or a secrets file only."""

from __future__ import annotations

import hashlib
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config, parse_size
from gateway.exceptions import ConfigError
from gateway.observability import new_id, redact
from gateway.safety import DEMO_SECRETS, DEMO_TOKENS, check_before_serving
from tests.gateway.conftest import CONFIG_TEXT, SECRETS

ROOT = Path(__file__).resolve().parents[2]
ENV = {f"SUPEX_SECRET_{k.upper()}": v for k, v in SECRETS.items()}


def _example(tmp_path: Path) -> Path:
    """config.example.toml and its secrets file in a folder of their own, with the data key file
    ``make run`` creates on first start."""
    for name in ("config.example.toml", "secrets.example.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "var").mkdir()
    assert main(["keys", "generate", "--output", str(tmp_path / "var" / "data.key")]) == 0
    return tmp_path / "config.example.toml"


def test_the_example_configuration_loads(tmp_path: Path) -> None:
    """config.example.toml is valid, with its secrets file beside it and a data key."""
    config = load_config(_example(tmp_path), environ={})
    assert [c.id for c in config.connector] == ["amr", "internet-plus", "enforcement", "double-random",
                                                "double-random-files", "jinan", "hotline"]
    assert [r.id for r in config.sharing] == ["clue-to-amr"]
    assert config.connectors()["enforcement"].mapping_name == "enforcement_oversight.penalty"
    assert config.gateway.max_body == 16 * 1024 * 1024
    assert config.store_path() == str(tmp_path / "var" / "supex.db")
    assert config.data_cipher is not None and config.gateway.allow_demo_secrets
    assert (tmp_path / "var" / "data.key").stat().st_mode & 0o777 == 0o600
    assert check_before_serving(config)[0].startswith("演示密钥")  # it serves, saying it is a demonstration


def test_the_demonstration_credentials_are_those_the_examples_publish() -> None:
    """The values ``supex serve`` refuses are exactly the example files' (they cannot drift apart)."""
    published = tomllib.loads((ROOT / "secrets.example.toml").read_text(encoding="utf-8"))
    assert set(published.values()) == DEMO_SECRETS
    tokens = re.findall(r"token_sha256 = \"([0-9a-f]{64})\"\s*#\s*(\S+)",
                        (ROOT / "config.example.toml").read_text(encoding="utf-8"))
    assert {token for _, token in tokens} == DEMO_TOKENS
    assert all(hashlib.sha256(token.encode()).hexdigest() == digest for digest, token in tokens)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_key_names_the_key_and_line(tmp_path: Path) -> None:
    """A misspelt connector key fails with its name and line."""
    text = CONFIG_TEXT.replace('region_code = "370100"', 'region_code = "370100"\nconsume = ["clue"]')
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), environ=ENV)
    line = text.splitlines().index('consume = ["clue"]') + 1
    assert f"c.toml:{line}:" in str(caught.value) and "consume" in str(caught.value)


@pytest.mark.parametrize(("old", "new", "words"), [
    ('id = "amr"', 'id = "AMR!"', r"connector\[1\]\.id \(id 'AMR!'\)"),
    ('produces = ["penalty"]', 'produces = ["penalties"]', "unknown record types"),
    ('log_hash = "sm3"', 'log_hash = "md5"', "log_hash"),
    ('max_body = "256KiB"', 'max_body = "lots"', "not a size"),
    ('listen = "127.0.0.1:8440"', 'listen = "8440"', "host:port"),
    ('region_code = "370200"', 'region_code = "3702"', "region_code"),
    ('store = "sqlite:///supex.db"', 'store = "mysql://db/supex"', "got a mysql:// URL"),
    ('store = "sqlite:///supex.db"', 'store = "sqlite://supex.db"', "three slashes"),
])
def test_bad_values_are_named(tmp_path: Path, old: str, new: str, words: str) -> None:
    """Each bad value is reported with where it is."""
    with pytest.raises(ConfigError, match=words):
        load_config(_write(tmp_path, CONFIG_TEXT.replace(old, new)), environ=ENV)


def test_a_push_must_end_before_its_claim_runs_out(tmp_path: Path) -> None:
    """A delivery claimed for ``delivery_lease_seconds`` must be pushed within it, or another gateway
    would take it over while the push is still going."""
    text = CONFIG_TEXT.replace('log_hash = "sm3"', 'log_hash = "sm3"\ndelivery_lease_seconds = 5').replace(
        'region_code = "370100"', 'region_code = "370100"\ndelivery = "push"\nendpoint = "http://127.0.0.1:9/in"\n'
        'push_timeout_seconds = 10')
    with pytest.raises(ConfigError, match=r"delivery_lease_seconds \(5\) must be longer than the push_timeout_seconds"
                                          r" of \['jinan'\]"):
        load_config(_write(tmp_path, text), environ=ENV)


def test_secrets_come_from_the_environment_or_a_secrets_file(tmp_path: Path) -> None:
    """A missing secret is an error naming the variable; a secrets file supplies them instead."""
    with pytest.raises(ConfigError, match="SUPEX_SECRET_QINGDAO"):
        load_config(_write(tmp_path, CONFIG_TEXT), environ={k: v for k, v in ENV.items() if "QINGDAO" not in k})
    (tmp_path / "secrets.toml").write_text("\n".join(f'{k} = "{v}"' for k, v in SECRETS.items()), encoding="utf-8")
    text = CONFIG_TEXT.replace('max_records = 50', 'max_records = 50\nsecrets_file = "secrets.toml"')
    assert load_config(_write(tmp_path, text), environ={}).secrets == SECRETS


def test_the_environment_overrides_the_secrets_file_and_says_so(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``SUPEX_SECRET_<ID>`` wins over the file; check-config names each secret's source, never the
    secret; a secret too short is said to be short (not missing), naming where it came from."""
    (tmp_path / "secrets.toml").write_text("\n".join(f'{k} = "{v}"' for k, v in SECRETS.items()), encoding="utf-8")
    text = CONFIG_TEXT.replace('max_records = 50', 'max_records = 50\nsecrets_file = "secrets.toml"')
    mine = "from-the-environment-000"
    config = load_config(_write(tmp_path, text), environ={"SUPEX_SECRET_AMR": mine})
    assert config.secrets["amr"] == mine and config.secrets["jinan"] == SECRETS["jinan"]
    assert config.secret_sources["amr"] == "SUPEX_SECRET_AMR"
    assert config.secret_sources["jinan"] == "secrets file secrets.toml"
    with pytest.raises(ConfigError, match=r"'amr' \(from SUPEX_SECRET_AMR\) is 5 characters"):
        load_config(_write(tmp_path, text), environ={"SUPEX_SECRET_AMR": "short"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SUPEX_SECRET_AMR", mine)
        assert main(["check-config", str(tmp_path / "c.toml")]) == 0
    printed = capsys.readouterr().out
    assert "secret of amr: SUPEX_SECRET_AMR" in printed and "secret of jinan: secrets file" in printed
    assert mine not in printed and SECRETS["jinan"] not in printed


def test_secrets_are_not_printed_with_the_configuration(tmp_path: Path) -> None:
    """The configuration's repr and dump leave the secrets out."""
    config = load_config(_write(tmp_path, CONFIG_TEXT), environ=ENV)
    assert not any(s in repr(config) or s in str(config.model_dump()) for s in SECRETS.values())


@pytest.mark.parametrize(("text", "size"), [("16MiB", 16 * 2**20), ("256KiB", 262144), ("1000", 1000),
                                            ("2 MB", 2_000_000), (512, 512)])
def test_sizes(text: str | int, size: int) -> None:
    """Sizes are written with binary or decimal units."""
    assert parse_size(text) == size


def test_the_log_processor_redacts_secrets_and_personal_numbers() -> None:
    """Secret-like keys are dropped and ID and phone numbers masked in every value."""
    event = {"event": "x", "secret": "s3cret", "authorization": "Bearer t", "note": "370202199301095153 / 13812345678"}
    out = redact(None, "info", event)
    assert out == {"event": "x", "secret": "[redacted]", "authorization": "[redacted]", "note": "[id_no] / [phone]"}


RULE = ('\n[[sharing]]\nid = "clue-to-jinan"\nrecord_types = ["clue"]\nconsumers = ["jinan"]\npurpose = "线索核查"\n'
        'fields = ["clue_id", "reporter.phone"]\nmask = { "reporter.phone" = "phone" }\n')


def test_check_config_counts_the_sharing_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration with a valid [[sharing]] rule loads, and check-config says how many rules it has."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["check-config", str(_write(tmp_path, CONFIG_TEXT + RULE))]) == 0
    printed = capsys.readouterr().out
    assert "1 sharing rule, " in printed
    assert "procedure: 0 obligations, timeliness of no record type; working days known until " in printed
    procedure = '\n[[obligation]]\nid = "x"\nrecord_type = "clue"\nwithin = "3wd"\n\n[timeliness]\npenalty = "7wd"\n'
    assert main(["check-config", str(_write(tmp_path, CONFIG_TEXT + RULE + procedure))]) == 0
    assert "procedure: 1 obligation, timeliness of penalty 7wd; working days known until " in capsys.readouterr().out
    with_database = CONFIG_TEXT.replace('store = "sqlite:///supex.db"', 'store = "postgresql://ops:hunter2@db:5432/x"')
    assert main(["check-config", str(_write(tmp_path, with_database))]) == 0
    printed = capsys.readouterr().out
    assert "store postgresql://ops@db:5432/x" in printed and "hunter2" not in printed


@pytest.mark.parametrize(("old", "new", "words"), [
    ('consumers = ["jinan"]', 'consumers = ["nobody"]', "unknown consumers ['nobody']"),
    ('"reporter.phone"]', '"reporter.mobile"]', "no field 'reporter.mobile' under data of clue"),
    ('= "phone" }', '= "blur" }', "unknown mask 'blur'"),
    ('purpose = "线索核查"\n', "", "sharing[1].purpose (id 'clue-to-jinan'): 缺少必填项 / is required"),
    ('record_types = ["clue"]', 'record_types = ["rumour"]', "unknown record types ['rumour']"),
    ('purpose = "线索核查"', 'purpose = "x"\ndeliver_within = "soon"', "not a duration: 'soon'"),
    ('purpose = "线索核查"', 'purpose = "x"\nwhen = { region = "3701" }',
     "sharing[1].when.region (id 'clue-to-jinan'): 未知的键 / unknown key 'region'"),
])
def test_a_bad_sharing_rule_is_named(tmp_path: Path, old: str, new: str, words: str) -> None:
    """Unknown consumers, field paths, masks, record types and keys in a rule stop the configuration."""
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(_write(tmp_path, CONFIG_TEXT + RULE.replace(old, new)), environ=ENV)


def test_request_and_batch_ids_are_unique_hex() -> None:
    """Ids come from a per-process random prefix and a counter: 32 hex digits, never repeated."""
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ('kind = "double_random"', 'kind = "no_such_kind"', 'kind = "no_such_kind"',
     "unknown connector kind 'no_such_kind' (known: double_random, enforcement_oversight, file_drop, http_json, "
     "internet_plus)"),
    ('region_code = "370100"', 'region_code = "3701"', 'region_code = "3701"', "region_code (id 'jinan')"),
    ('region_code = "370100"', 'region_code = "370100"\ndelivery = "pushh"', 'delivery = "pushh"',
     "must be one of 'pull' or 'push', not 'pushh'"),
    ('region_code = "370100"', 'region_code = "370100"\npoll_limit = 0', 'poll_limit = 0', "0 must be >= 1"),
])
def test_an_error_names_the_line_of_its_own_table(tmp_path: Path, old: str, new: str, key: str, words: str) -> None:
    """The line of the key in the connector it belongs to (not the first connector's key of that
    name), the connector's id, what is wrong in both languages, and the allowed values or bounds."""
    assert CONFIG_TEXT.count(old) == 1
    text = CONFIG_TEXT.replace(old, new)
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), environ=ENV)
    line = text.splitlines().index(key) + 1
    assert f"c.toml:{line}: " in str(caught.value) and words in str(caught.value)
    assert "should" not in str(caught.value)  # no raw validator text


def test_a_department_code_with_a_wrong_check_character_is_refused(tmp_path: Path) -> None:
    good = re.search(r'department_code = "([0-9A-Z]{18})"', CONFIG_TEXT)
    assert good is not None
    wrong = good[1][:-1] + ("A" if good[1][-1] != "A" else "B")
    with pytest.raises(ConfigError, match=f"department_code '{wrong}' is not a valid unified social credit code"):
        load_config(_write(tmp_path, CONFIG_TEXT.replace(good[1], wrong, 1)), environ=ENV)


def test_an_error_of_the_whole_file_has_no_empty_location(tmp_path: Path) -> None:
    text = CONFIG_TEXT + CONFIG_TEXT[CONFIG_TEXT.index("[[connector]]"):].split("[[connector]]")[1].join(
        ["[[connector]]", ""])
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text), environ=ENV)
    assert "duplicate connector ids" in str(caught.value) and ": : " not in str(caught.value)
