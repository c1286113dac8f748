"""The examples of docs/mapping.md are complete mapping files whose own examples hold."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from gateway.cli import main
from mappings import compile_text, run_examples
from schemas import Validator

DOC = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
BLOCKS = [b for b in TOML_BLOCKS if b.startswith("[mapping]")]


def test_the_document_has_examples() -> None:
    """There is an example for each source format."""
    assert len(BLOCKS) == 8


@pytest.mark.parametrize("block", BLOCKS, ids=[re.search(r'name = "(.*?)"', b).group(1) for b in BLOCKS])  # type: ignore[union-attr]
def test_each_documented_mapping_compiles_and_its_examples_hold(block: str, validator: Validator) -> None:
    """Each documented mapping loads, carries examples, and every example holds."""
    mapping = compile_text(block, source=str(DOC))
    outcomes = run_examples(mapping, validator)
    assert outcomes
    assert [(o.name, o.problems) for o in outcomes if not o.ok] == []


ROOT = DOC.parents[1]
CHAPTER = DOC.read_text(encoding="utf-8").split("## Onboarding a system", 1)[1].split("\n## ", 1)[0]
CONSOLE = re.findall(r"```console\n(.*?)```", CHAPTER, re.S)
STEPS = [(m.group(1), [line for line in m.group(2).splitlines() if line.strip()])
         for block in CONSOLE for m in re.finditer(r"^\$ (.+)\n((?:(?!\$ ).*\n)*)", block, re.M)]


def _collapsed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_the_onboarding_chapter_shows_the_sample_mappings_as_they_are() -> None:
    """Each mapping of the chapter is the file in connectors/samples/, less its heading comment."""
    blocks = re.findall(r"```toml\n(.*?)```", CHAPTER, re.S)
    shown = {re.search(r'name = "(.*?)"', b).group(1): b for b in blocks}  # type: ignore[union-attr]
    assert set(shown) == {"emergency.inspection", "tax.penalty", "market.license", "market.license_csv"}
    for name, block in shown.items():
        text = (ROOT / "connectors" / "samples" / f"{name}.toml").read_text(encoding="utf-8")
        heading = text.removesuffix(block)
        assert text.endswith(block) and all(line.startswith("#") or not line.strip() for line in heading.splitlines())


@pytest.mark.parametrize(("command", "expected"), STEPS, ids=[c for c, _ in STEPS])
def test_each_onboarding_command_prints_what_the_chapter_says(
        command: str, expected: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    argv = shlex.split(command)
    assert argv[0] == "supex"
    main(argv[1:])
    out = capsys.readouterr()
    printed = _collapsed(out.out + "\n" + out.err)
    assert "Traceback" not in printed
    for line in expected:
        assert _collapsed(line) in printed, f"{command}: {line!r} not printed"
