"""Assemble a mapping's compiled rules into one generated Python function.

Rules that only read a value and trim it (most of any mapping) are written inline; every
other rule is called as the closure ``compiler`` made of it. The generated function builds
the nested target dict directly, so a record costs a few dict reads and writes, not a chain
of calls per field. Names and paths enter the source only through ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mappings.definitions import Rule
from mappings.exceptions import ValueMappingError
from mappings.transforms import halfwidth
from schemas.issues import Issue

__all__ = ["Assembled", "assemble"]

Assembled = Callable[[Any], tuple[dict[str, Any], list[Issue]]]
_INLINE_KEYS = {"from_", "trim", "halfwidth"}


def _inline_clean(rule: Rule) -> str | None:
    if rule.trim and rule.halfwidth:
        return "v = HALFWIDTH(v).strip()"
    if rule.trim:
        return "v = v.strip()"
    if rule.halfwidth:
        return "v = HALFWIDTH(v)"
    return None


class _Writer:
    """Source lines of the generated function, with one local per nested target dict."""

    def __init__(self, nested: bool) -> None:
        self.nested = nested
        self.lines: list[str] = []
        self.dicts: dict[tuple[str, ...], str] = {(): "out"}

    def put(self, target: str, indent: str) -> None:
        parts = tuple(target.split(".")) if self.nested else (target,)
        for depth in range(1, len(parts)):
            prefix = parts[:depth]
            if prefix not in self.dicts:
                self.dicts[prefix] = f"d{len(self.dicts)}"
            name, parent = self.dicts[prefix], self.dicts[parts[: depth - 1]]
            self.lines.append(f"{indent}if {name} is None: {name} = {parent}.setdefault({parts[depth - 1]!r}, {{}})")
        self.lines.append(f"{indent}{self.dicts[parts[:-1]]}[{parts[-1]!r}] = v")


def assemble(fields: list[tuple[str, Rule, Callable[[Any], Any]]], *, nested: bool, base: dict[str, Any],
             inline_read: Callable[[str], str | None], error_path: Callable[[str], str],
             missing: object) -> Assembled:
    """One function ``source -> (target dict, issues)`` doing what ``fields`` say, in their order."""
    writer = _Writer(nested)
    names: dict[str, Any] = {"MISSING": missing, "HALFWIDTH": halfwidth, "ValueMappingError": ValueMappingError,
                             "BASE": base}
    body = writer.lines
    for n, (target, rule, run) in enumerate(fields):
        read = inline_read(rule.from_) if rule.from_ is not None and rule.model_fields_set <= _INLINE_KEYS else None
        if read is not None:
            body.append(f"v = {read}")
            clean = _inline_clean(rule)
            if clean:
                body.append(f"if v.__class__ is str: {clean}")
            body.append("if v is not None and v != '' and v != []:")
            writer.put(target, "    ")
            continue
        names[f"RULE{n}"] = run
        names[f"PATH{n}"] = error_path(target)
        body += [
            "try:",
            f"    v = RULE{n}(src)",
            "except ValueMappingError as exc:",
            f"    problems.extend(exc.issues(PATH{n}))",
            "else:",
            "    if v is not MISSING:",
        ]
        writer.put(target, "        ")
    locals_ = [f"    {name} = None" for name in writer.dicts.values() if name != "out"]
    source = "\n".join([
        "def assembled(src):",
        "    problems = []",
        "    out = dict(BASE)",
        *locals_,
        *("    " + line for line in body),
        "    return out, problems",
    ])
    exec(compile(source, "<mapping>", "exec"), names)  # noqa: S102 - source built from repr'd names only
    function: Assembled = names["assembled"]
    return function
