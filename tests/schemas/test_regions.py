"""Region names to GB/T 2260 codes, and region codes admitted beyond it by configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_config
from gateway.exceptions import ConfigError
from mappings import compile_text
from schemas import Validator
from schemas.regions import RegionNameError, code_of_name
from tests.conftest import VALID_RECORDS
from tests.gateway.conftest import CONFIG_TEXT


@pytest.mark.parametrize(("name", "within", "code"), [
    ("历下区", None, "370102"),
    ("市中区", "济南市", "370103"),  # a district of several cities: the city says which
    ("市中区", "370400", "370402"),
    ("历城区", "370100", "370112"),
    ("历城县", None, "370121"),  # a name no longer in force still names its old code
    ("章丘市", "山东省", "370181"),
    ("济南市", None, "370100"),
])
def test_a_region_name_becomes_its_code(name: str, within: str | None, code: str) -> None:
    assert code_of_name(name, within) == code


@pytest.mark.parametrize(("name", "within", "says"), [
    ("市中区", None, "names several regions: 370103 (济南市), 370402 (枣庄市)"),
    ("市中区", "山东省", "names several regions: 370103 (济南市), 370402 (枣庄市); give the province"),
    ("高新区", None, "no region is called '高新区'"),
    ("历下区", "青岛市", "no region is called '历下区' in 青岛市"),
    ("历下区", "370102", "370102 is not the code of a province or city"),
])
def test_a_name_that_is_not_exactly_one_region_is_refused(name: str, within: str | None, says: str) -> None:
    with pytest.raises(RegionNameError, match=says.replace("(", r"\(").replace(")", r"\)")):
        code_of_name(name, within)


def test_a_mapping_turns_county_names_into_codes_within_the_city_another_field_names() -> None:
    mapping = compile_text('[mapping]\nname = "t.regions"\nrecord_type = "inspection"\nformat = "json"\n'
                           '[fields]\nregion_code = { from = "county", region_name = { within = "city" } }\n')
    assert mapping.to_standard({"county": "市中区", "city": "枣庄市"})[0]["region_code"] == "370402"
    _, (problem,) = mapping.to_standard({"county": "市中区", "city": "山东省"})
    assert problem.path == "/region_code" and "names several regions" in problem.message


def _with_region(code: str) -> dict[str, object]:
    record = json.loads(json.dumps(VALID_RECORDS["inspection"]))
    record["region_code"] = code
    return record


def test_extra_region_codes_are_admitted_only_where_configured() -> None:
    """济南高新区 370171, a function zone of the statistical division codes, is not in GB/T 2260."""
    assert [e.code for e in Validator().validate(_with_region("370171")).errors] == ["region_unknown"]
    assert Validator(extra_regions={"370171": "济南高新技术产业开发区"}).validate(_with_region("370171")).ok
    assert not Validator(extra_regions={"370171": "济南高新区"}).validate(_with_region("370172")).ok


@pytest.mark.parametrize(("table", "says"), [
    ('{ "370102" = "历下区" }', "370102 is a GB/T 2260 code already (历下区)"),
    ('{ "379971" = "某开发区" }', "its city 379900 is not a GB/T 2260 code"),
    ('{ "37017" = "短" }', "must be a six-digit code and its name"),
])
def test_extra_region_codes_are_checked_in_the_configuration(tmp_path: Path, table: str, says: str) -> None:
    path = tmp_path / "supex.toml"
    path.write_text(CONFIG_TEXT.replace("[gateway]\n", f"[gateway]\nextra_region_codes = {table}\n", 1),
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_config(path, need_secrets=False)


def test_validate_admits_the_configured_codes_with_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "supex.toml"
    extra = '[gateway]\nextra_region_codes = { "370171" = "济南高新区" }\n'
    config.write_text(CONFIG_TEXT.replace("[gateway]\n", extra, 1), encoding="utf-8")
    records = tmp_path / "r.json"
    records.write_text(json.dumps([_with_region("370171")], ensure_ascii=False), encoding="utf-8")
    assert main(["validate", str(records)]) == 1
    assert main(["validate", "--config", str(config), str(records)]) == 0
    capsys.readouterr()
