"""The examples of docs/mapping.md are complete mapping files whose own examples hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mappings import compile_text, run_examples
from schemas import Validator

DOC = Path(__file__).resolve().parents[2] / "docs" / "mapping.md"
TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
BLOCKS = [b for b in TOML_BLOCKS if b.startswith("[mapping]")]


def test_the_document_has_examples() -> None:
    """There is an example for each source format."""
    assert len(BLOCKS) == 4


@pytest.mark.parametrize("block", BLOCKS, ids=[re.search(r'name = "(.*?)"', b).group(1) for b in BLOCKS])  # type: ignore[union-attr]
def test_each_documented_mapping_compiles_and_its_examples_hold(block: str, validator: Validator) -> None:
    """Each documented mapping loads, carries examples, and every example holds."""
    mapping = compile_text(block, source=str(DOC))
    outcomes = run_examples(mapping, validator)
    assert outcomes
    assert [(o.name, o.problems) for o in outcomes if not o.ok] == []
