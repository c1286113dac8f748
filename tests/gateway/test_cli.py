"""The command line: exit codes, reports, streaming and help on every command."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import gateway.cli.files
from gateway.cli import build_parser, main
from gateway.exchange_log import LogEntry
from gateway.store import open_store
from tests.conftest import IDENTIFIERS, SAMPLES, VALID_RECORDS
from tests.gateway.conftest import config_in


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_validate_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """0 when all records are valid, 1 when any is invalid, 2 for an unknown --type."""
    good = _write(tmp_path, "good.json", list(VALID_RECORDS.values()))
    assert _run(capsys, "validate", "--quiet", good)[0] == 0
    bad = dict(VALID_RECORDS["inspection"], region_code="379999")
    code, out, err = _run(capsys, "validate", _write(tmp_path, "bad.json", bad))
    assert code == 1
    assert "record 0" in out and "id=in-0001" in out and "region_unknown" in out
    assert "1 invalid" in err
    assert _run(capsys, "validate", "--type", "nonesuch", good)[0] == 2


def test_validate_reports_every_record_of_a_mixed_ndjson_file(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    """A broken line is reported by number and the other lines are still validated."""
    bad = json.loads(json.dumps(VALID_RECORDS["inspection"]))
    bad["data"]["subject"]["cert_no"] = IDENTIFIERS["invalid_uscc"][0]
    lines = [json.dumps(VALID_RECORDS["inspection"]), "{broken", json.dumps(bad)]
    code, out, _ = _run(capsys, "validate", "--json", _write(tmp_path, "mixed.ndjson", "\n".join(lines)))
    reports = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [r["valid"] for r in reports] == [True, False, False]
    assert reports[1]["errors"][0]["code"] == "malformed" and reports[1]["where"] == "line 2"
    assert reports[2]["errors"][0]["code"] == "uscc_checksum" and reports[2]["record_id"] == "in-0001"


def test_validate_lenient_and_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--lenient turns checksum errors into warnings; --type fills in a missing record_type."""
    bad = json.loads(json.dumps(VALID_RECORDS["inspection"]))
    bad["data"]["subject"]["cert_no"] = IDENTIFIERS["invalid_uscc"][0]
    path = _write(tmp_path, "bad.json", bad)
    assert _run(capsys, "validate", path)[0] == 1
    code, out, _ = _run(capsys, "validate", "--lenient", path)
    assert code == 0 and "warning" in out
    untyped = {k: v for k, v in VALID_RECORDS["penalty"].items() if k != "record_type"}
    assert _run(capsys, "validate", "--type", "penalty", _write(tmp_path, "u.json", untyped))[0] == 0
    penalty = _write(tmp_path, "p.json", VALID_RECORDS["penalty"])
    assert _run(capsys, "validate", "--type", "inspection", penalty)[0] == 1


def test_unreadable_files_are_reported_and_the_rest_processed(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    """A missing file is a usage error (exit 2, said on standard error), not an invalid record; the
    next file is still validated. ``map --reverse`` writes nothing when a file is missing."""
    good = _write(tmp_path, "good.json", VALID_RECORDS["inspection"])
    code, out, err = _run(capsys, "validate", str(tmp_path / "missing.json"), good)
    assert code == 2
    assert "missing.json: 无法读取 / cannot read" in err and "1 file not read" in err and "in-0001" in out
    code, out, err = _run(capsys, "map", "--reverse", "--mapping", "enforcement_oversight.penalty",
                          str(tmp_path / "missing.ndjson"))
    assert (code, out) == (2, "") and "missing.ndjson: 无法读取 / cannot read: no such file" in err


@pytest.mark.parametrize(("mapping", "sample", "count"), [
    ("internet_plus.check_action", "check_actions.json", 12),
    ("enforcement_oversight.penalty", "penalties.xml", 3),
    ("double_random.result", "results.gb18030.csv", 12),
])
def test_map_writes_standard_ndjson(capsys: pytest.CaptureFixture[str], mapping: str, sample: str, count: int) -> None:
    """Mapped, validated records go to standard output as NDJSON."""
    code, out, err = _run(capsys, "map", "--mapping", mapping, "--validate", str(SAMPLES / sample))
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0, err
    assert len(records) == count


def test_map_reports_refused_xml_and_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """XML with entities maps nothing, says why on standard error, and exits 1."""
    bomb = ('<!DOCTYPE x [<!ENTITY a "lol">]>'
            '<XZCF_LIST xmlns="urn:sd:zfjd:xzcf:1"><XZCF><CF_ID>&a;</CF_ID></XZCF></XZCF_LIST>')
    code, out, err = _run(capsys, "map", "--mapping", "enforcement_oversight.penalty", _write(tmp_path, "b.xml", bomb))
    assert code == 1 and out == "" and "DTD" in err


def test_map_refuses_a_file_its_mapping_cannot_read_and_exits_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A missing file, and a CSV without a mapped column: one message each naming what is wrong,
    no records, no traceback; the readable file beside them is still mapped."""
    header, *rows = (SAMPLES / "results.utf8bom.csv").read_text(encoding="utf-8-sig").splitlines()
    cut = [c for c in header.split(",") if c != "统一社会信用代码"]
    short = _write(tmp_path, "short.csv", "\n".join([",".join(cut), *rows]))
    code, out, err = _run(capsys, "map", "--mapping", "double_random.result", "--validate", str(tmp_path / "no.csv"),
                          short, str(SAMPLES / "results.utf8bom.csv"))
    assert code == 2
    assert len(out.splitlines()) == len([r for r in rows if r.strip()])  # the sample only: nothing of the others
    assert f"{tmp_path / 'no.csv'}: 无法读取 / cannot read: No such file or directory" in err
    (named,) = [line for line in err.splitlines() if "统一社会信用代码" in line]
    assert "the mapped column '统一社会信用代码' is not in the header" in named
    assert "required" not in err and "2 files not read" in err


def test_map_reverse_writes_xml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--reverse turns standard records into a 双公示 XML document."""
    path = _write(tmp_path, "p.ndjson", json.dumps(VALID_RECORDS["penalty"], ensure_ascii=False))
    code, out, _ = _run(capsys, "map", "--reverse", "--mapping", "enforcement_oversight.penalty", path)
    assert code == 0
    assert "<CF_FKJE>45.7000</CF_FKJE>" in out and out.startswith("<?xml")


def test_a_mapping_file_with_an_unknown_key_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The error names the file, the key and the line."""
    text = '[mapping]\nname = "t"\nrecord_type = "inspection"\nformat = "json"\n[fields]\nrecord_id = { frm = "id" }\n'
    path = _write(tmp_path, "bad.toml", text)
    code, _, err = _run(capsys, "map", "--mapping", path, path)
    assert code == 2
    assert f"{path}:6:" in err and "frm" in err


def test_mapping_test_runs_the_builtin_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """Without names every built-in mapping's examples run, and all pass."""
    code, out, _ = _run(capsys, "mapping", "test")
    assert code == 0
    assert "12 passed, 0 failed" in out


def test_schemas_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    """list names all fifteen types; show prints a schema; an unknown type exits 2."""
    code, out, _ = _run(capsys, "schemas", "list", "--json")
    assert code == 0 and len(json.loads(out)) == 15
    code, out, _ = _run(capsys, "schemas", "show", "penalty")
    assert json.loads(out)["$id"] == "urn:supex:v1:penalty"
    code, _, err = _run(capsys, "schemas", "show", "nonesuch")
    assert code == 2 and "known:" in err


def _commands(parser: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(build_parser()))
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: tuple[str, ...]) -> None:
    """--help works on every command and subcommand."""
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    assert "usage: supex" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "bounds"), [
    (["log", "prune", "--config", "c.toml", "--archive", "a", "--retain-days", "-5"], "from 0 to 36500"),
    (["push", "--connector", "amr", "--batch-size", "0", "f.ndjson"], "from 1 to 10000"),
    (["pull", "--connector", "jinan", "--limit", "1001"], "from 1 to 1000"),
    # a wait of none would poll the gateway in a busy loop
    (["pull", "--connector", "jinan", "--follow", "--every", "0"], "from 0.1 to 86400"),
    (["witness", "--gateway", "http://g", "--key", "k", "--log-key", "l", "--state", "s", "--every", "0.5"],
     "from 1 to 86400"),
    (["witness", "--gateway", "http://g", "--key", "k", "--log-key", "l", "--state", "s", "--every", "nan"],
     "from 1 to 86400"),
])
def test_a_number_out_of_range_is_refused_naming_the_range(capsys: pytest.CaptureFixture[str], args: list[str],
                                                           bounds: str) -> None:
    """A ranged option's error names its range in one line, not every number it takes."""
    with pytest.raises(SystemExit) as done:
        main(args)
    said = capsys.readouterr().err
    assert done.value.code == 2 and bounds in said and len(said) < 1000, said[-300:]


def test_the_entry_point_is_installed() -> None:
    """The supex script runs as a program and exits 2 on a usage error."""
    exe = Path(sys.executable).parent / "supex"
    result = subprocess.run([str(exe), "schemas", "list"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "inspection" in result.stdout
    assert subprocess.run([str(exe), "nonesuch"], capture_output=True, check=False).returncode == 2


def test_log_filters_are_read_or_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--since`` with any offset, ``Z`` or a date selects the same entries; an unreadable time,
    an unknown event, type or connector exits 2 naming the option, instead of printing nothing."""
    config = config_in(tmp_path)
    store = open_store(config.store_path(), log_hash="sm3")
    entry = LogEntry("config_changed", store.now(), reason="a change")
    store.log.append([entry])
    store.close()
    at = dt.datetime.fromisoformat(entry.at)
    local = at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    path = str(tmp_path / "supex.toml")
    found = []
    for since in (local.isoformat(), at.isoformat().replace("+00:00", "Z"), local.date().isoformat()):
        code, out, _ = _run(capsys, "log", "query", "--config", path, "--since", since, "--event", "config_changed",
                            "--json")
        assert code == 0
        found.append([json.loads(line)["seq"] for line in out.splitlines()])
    assert found[0] == found[1] == found[2] == [1]
    for option, value, words in (("--since", "yesterday", "--since must be an ISO 8601"),
                                 ("--event", "stroed", "unknown event 'stroed'"),
                                 ("--record-type", "inspektion", "unknown record type"),
                                 ("--connector", "nobody", "'nobody' is no connector")):
        code, out, err = _run(capsys, "log", "query", "--config", path, option, value)
        assert (code, out) == (2, "") and words in err, option
        assert "Traceback" not in err


def test_every_option_of_every_command_says_what_it_is() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, command: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{command} {name}".strip())
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{command} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "")
    assert missing == []


def test_an_unexpected_error_is_one_line_unless_debugging(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(_args: argparse.Namespace) -> int:
        raise RuntimeError("a fault of supex")

    monkeypatch.setattr(gateway.cli.files, "schemas_list", broken)
    code, _, err = _run(capsys, "schemas", "list")
    assert code == 2 and "unexpected error: RuntimeError: a fault of supex" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        main(["--debug", "schemas", "list"])
    folder = tmp_path / "a-folder"
    folder.mkdir()

    def unreadable(_args: argparse.Namespace) -> int:
        return len(folder.read_text(encoding="utf-8"))  # a folder where a file was expected

    monkeypatch.setattr(gateway.cli.files, "schemas_list", unreadable)
    code, _, err = _run(capsys, "schemas", "list")
    assert code == 2 and err == f"supex: {folder}: Is a directory (--debug shows where)\n"
