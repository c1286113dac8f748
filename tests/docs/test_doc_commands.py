"""Every ``supex`` command the docs show is one the command line takes: its command, options and
choices parsed by the command line's own parser (README.md's are also run: ``test_readme.py``;
the onboarding chapter's: ``test_mapping_doc.py``)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SHOWN = sorted({(path.name, line) for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
                for block in re.findall(r"```[a-z]*\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
                for line in block.splitlines()
                if re.match(r"^(\$ )?(\.venv/bin/)?supex ", line.strip())})


def _argv(line: str) -> list[str]:
    """The command's words: the prompt, comments, redirections and optional parts (``[--json]``)
    left out, a choice written ``a|b`` taken as its first."""
    text = re.sub(r"^(\$ )?(\.venv/bin/)?supex ", "", line.strip()).split("  #", 1)[0]
    text = re.sub(r"\s*\[[^\]]*\]", "", text)
    words = []
    for word in shlex.split(text):
        if word in (">", "<", "|", "2>&1") or word.startswith((">", "<")):
            break
        words.append(word.split("|", 1)[0] if word.startswith("--") is False and "|" in word else word)
    return words


def test_the_docs_show_commands() -> None:
    assert len(SHOWN) >= 20


@pytest.mark.parametrize(("doc", "line"), SHOWN, ids=[f"{d}: {line[:60]}" for d, line in SHOWN])
def test_a_command_the_docs_show_is_one_the_command_line_takes(doc: str, line: str) -> None:
    try:
        build_parser().parse_args(_argv(line))
    except SystemExit as exc:
        pytest.fail(f"{doc}: {line!r} is not a command supex takes (exit {exc.code})")
