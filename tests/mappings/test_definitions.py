"""Mapping files are read strictly: every mistake names the key and its line."""

from __future__ import annotations

import pytest

from mappings import compile_text
from mappings.exceptions import MappingDefinitionError

HEADER = """\
[mapping]
name = "test.rows"
record_type = "inspection"
format = "json"
"""


def _error(text: str) -> MappingDefinitionError:
    with pytest.raises(MappingDefinitionError) as caught:
        compile_text(text, source="test.toml")
    return caught.value


def test_an_unknown_key_in_a_rule_is_named_with_its_line() -> None:
    """A misspelt transform inside [fields] is reported with the file, the key and the line."""
    error = _error(HEADER + '\n[fields]\nrecord_id = "id"\n"data.form" = { from = "f", lookp = "t" }\n')
    assert error.line == 8
    assert "lookp" in str(error)
    assert str(error).startswith("test.toml:8: ")


def test_an_unknown_top_level_key_is_named() -> None:
    """A misspelt section is reported too."""
    error = _error(HEADER + 'reversable = true\n[fields]\nrecord_id = "id"\n')
    assert "reversable" in str(error)
    assert error.line == 5


def test_a_rule_needs_exactly_one_source() -> None:
    """from and const together are refused."""
    error = _error(HEADER + '[fields]\nrecord_id = { from = "id", const = "x" }\n')
    assert "exactly one of" in str(error)


@pytest.mark.parametrize(("rule", "words"), [
    ('{ from = "r", lookup = "nowhere" }', "undefined table"),
    ('{ from = "r", code_of = "nowhere" }', "unknown standard code table"),
    ('{ from = "r", format = "%Y" }', "format needs"),
    ('{ zip = { a = "x" } }', "zip needs split"),
    ('{ from = "r", scale = "abc" }', "scale is not a decimal"),
])
def test_bad_rules_are_refused_at_compile_time(rule: str, words: str) -> None:
    """A rule that cannot work fails when the mapping is loaded, naming the target."""
    error = _error(HEADER + f'[fields]\n"data.result.code" = {rule}\n')
    assert words in str(error)
    assert "data.result.code" in str(error)


def test_unknown_record_types_and_toml_errors() -> None:
    """A mapping to a type the interface lacks, or broken TOML, is a configuration error."""
    assert "nonesuch" in str(_error(HEADER.replace("inspection", "nonesuch") + '[fields]\nrecord_id = "id"\n'))
    assert "TOML" in str(_error("[mapping\n"))


def test_a_reversible_mapping_needs_reverse_rules() -> None:
    """Declaring reversible without [reverse] is an error."""
    assert "[reverse]" in str(_error(HEADER + 'reversible = true\n[fields]\nrecord_id = "id"\n'))


def test_xml_paths_need_declared_prefixes() -> None:
    """An XPath with an undeclared namespace prefix is refused."""
    text = HEADER.replace('"json"', '"xml"') + '[fields]\nrecord_id = "y:ID"\n'
    assert "undeclared namespace prefix" in str(_error(text))
