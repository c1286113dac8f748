"""GB/T 2260 region names and codes, past and present, from python-stdnum's table (``cn/loc.dat``):
a county's or city's name turned into its code, within a province or city where the name alone
is ambiguous (``市中区`` is a district of several cities). A name that does not name exactly one
region is never guessed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["Region", "RegionNameError", "code_of_name", "regions"]

_ENTRY = re.compile(r"(?:\[(\d*)-(\d*)\])?(.+)")


class RegionNameError(ValueError):
    """A region name that names no region, or several, within what was given."""


@dataclass(frozen=True, slots=True)
class Region:
    """One name a code had, and whether the code is still in force under it."""

    code: str
    name: str
    in_force: bool


@cache
def regions() -> tuple[Region, ...]:
    """Every (code, name) of the table: a code renamed is there under each of its names."""
    text = resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8")
    out = []
    province = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        number, _, props = line.strip().partition(" ")
        if not line.startswith(" "):
            province = number
            continue
        names = props.partition("=")[2].strip('"').split(",")
        for position, entry in enumerate(names):
            match = _ENTRY.fullmatch(entry.strip())
            if not match:
                continue
            _started, ended, name = match.groups()
            current = position == len(names) - 1 and not ended
            out.append(Region(province + number, name, current))
    return tuple(out)


@cache
def _by_name() -> dict[str, tuple[Region, ...]]:
    index: dict[str, list[Region]] = {}
    for region in regions():
        index.setdefault(region.name, []).append(region)
    return {name: tuple(found) for name, found in index.items()}


def _prefix(code: str) -> str:
    """The code's digits that its subdivisions share: 370000 → 37, 370100 → 3701."""
    return code[:2] if code.endswith("0000") else code[:4] if code.endswith("00") else code


def _within_prefix(within: str) -> str:
    if re.fullmatch(r"\d{6}", within):
        if within.endswith("00"):
            return _prefix(within)
        raise RegionNameError(f"{within} 不是省或市的代码 / {within} is not the code of a province or city")
    areas = [r for r in _by_name().get(within, ()) if r.code.endswith("00")]
    codes = sorted({r.code for r in areas})
    if len(codes) != 1:
        named = "no province or city" if not codes else f"several: {', '.join(codes)}"
        raise RegionNameError(f"{within!r} 不能确定唯一的省或市 / {within!r} names {named}")
    return _prefix(codes[0])


def code_of_name(name: str, within: str | None = None) -> str:
    """The code of the region called ``name`` (``历下区``), within the province or city ``within`` (a
    name or a code) where given. A name some code had earlier counts too (``历城县`` → 370121); where
    a name still in force and old ones compete, the one in force is taken. ``RegionNameError`` if
    no region, or more than one, answers to it."""
    prefix = _within_prefix(within) if within else ""
    found = [r for r in _by_name().get(name, ()) if r.code.startswith(prefix) and _prefix(r.code) != prefix]
    if not found:
        where = f" in {within}" if within else ""
        raise RegionNameError(f"没有名为 {name!r} 的行政区划 / no region is called {name!r}{where}")
    in_force = {r.code for r in found if r.in_force}
    codes = in_force or {r.code for r in found}
    if len(codes) > 1:
        shown = ", ".join(f"{c} ({_parent_name(c)})" for c in sorted(codes))
        raise RegionNameError(f"{name!r} 对应多个行政区划 / {name!r} names several regions: {shown}; give the province "
                              "or city it is in (region_name.within)")
    return codes.pop()


def _parent_name(code: str) -> str:
    parent = code[:4] + "00" if not code.endswith("00") else code[:2] + "0000"
    names = [r.name for r in regions() if r.code == parent]
    return names[-1] if names else parent
