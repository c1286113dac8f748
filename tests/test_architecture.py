"""The layout docs/architecture.md draws, held to the code: which room may import which, one
exception tree drawn whole, and every route declared once with its roles and OpenAPI entry."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import schemas.exceptions
from gateway.http.app import all_routes
from gateway.http.openapi import openapi_document
from gateway.http.routes import PUBLIC, Route

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "mappings", "policy", "connectors", "gateway")
# each room, and the rooms its modules may import (besides its own); the order of the architecture
LAYERS: dict[str, set[str]] = {
    "schemas": set(),
    "mappings": {"schemas"},
    "policy": {"schemas"},
    "connectors": {"schemas", "mappings"},
    "gateway.base": {"schemas", "mappings", "policy", "connectors"},
    "gateway.store": {"schemas", "policy", "gateway.base"},
    "gateway.flow": {"schemas", "mappings", "policy", "connectors", "gateway.base", "gateway.store"},
    "gateway.http": {"schemas", "mappings", "policy", "connectors", "gateway.base", "gateway.store",
                     "gateway.flow"},
    "gateway.tools": {"schemas", "mappings", "policy", "connectors", "gateway.base", "gateway.store",
                      "gateway.flow", "gateway.http"},
}
_ROOMS = {"store", "flow", "http"}
_TOOLS = {"cli", "demo", "acceptance"}


def room_of(module: str) -> str:
    """The room of a module: a package of the core, or a room of the gateway."""
    top, _, rest = module.partition(".")
    if top != "gateway":
        return top
    name = rest.split(".")[0]
    if name in _ROOMS:
        return f"gateway.{name}"
    return "gateway.tools" if name in _TOOLS else "gateway.base"


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append((".".join(parts).removesuffix(".__init__"), path))
    return found


def _imports(path: Path) -> set[str]:
    """Every module of supex that ``path`` imports, at its top, in a function or for type checking."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def test_every_room_imports_only_the_rooms_below_it() -> None:
    crossings = sorted(f"{module} imports {imported}" for module, path in _modules()
                       for imported in _imports(path)
                       if room_of(imported) != room_of(module) and room_of(imported) not in LAYERS[room_of(module)])
    assert crossings == []


def test_the_architecture_document_draws_the_rule_that_is_enforced() -> None:
    """The table of rooms in docs/architecture.md says what each may import, as LAYERS does."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 3:
            room, _, may = cells
            drawn[room.strip("`")] = {m.strip("` ") for m in may.split(",") if m.strip() not in ("", "—")}
    assert drawn == LAYERS


def test_the_rule_sees_an_import_that_runs_back_up() -> None:
    """The check above would catch the store importing the HTTP rooms."""
    assert room_of("gateway.http.app") not in LAYERS[room_of("gateway.store.records")]
    assert room_of("gateway.flow.sharing") in LAYERS[room_of("gateway.http.inbox")]


def test_the_exception_tree_is_drawn_whole_in_its_docstring() -> None:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            importlib.import_module(info.name)
    drawn = set(re.findall(r"[─└├]── (\w+)", schemas.exceptions.__doc__ or ""))
    leaves, seen = set(), [schemas.exceptions.SupexError]
    while seen:
        cls = seen.pop()
        for sub in cls.__subclasses__():
            if not sub.__name__.startswith("_"):
                leaves.add(sub.__name__)
            seen.append(sub)
    assert leaves == drawn


def _route_names(routes: tuple[Route, ...]) -> list[str]:
    return [r.name for r in routes]


def test_every_route_is_declared_once_with_its_roles() -> None:
    names = _route_names(all_routes())
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="roles must be"):
        Route("GET", "/x", lambda _r: None, "x", frozenset({"everyone"}))  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="roles must be"):
        Route("GET", "/x", lambda _r: None, "x", frozenset({PUBLIC, "admin"}))  # type: ignore[arg-type, return-value]


def test_the_openapi_document_is_built_from_the_declarations() -> None:
    """Every route of the interface is in the document, under its path and method, secured as its
    roles say; the console's pages are not."""
    paths = openapi_document(all_routes())["paths"]
    documented = {(path, method.upper()) for path, operations in paths.items() for method in operations}
    declared = {(r.path, r.method) for r in all_routes() if r.doc is not None}
    assert documented == declared
    assert all(r.path.startswith("/console") for r in all_routes() if r.doc is None)
    for declared_route in all_routes():
        if declared_route.doc is None:
            continue
        security = paths[declared_route.path][declared_route.method.lower()]["security"]
        schemes = {name for requirement in security for name in requirement}
        assert ("connectorSignature" in schemes) == ("connector" in declared_route.roles), declared_route.name
        assert ("bearer" in schemes) == bool(declared_route.roles & {"auditor", "admin"}), declared_route.name
        assert (security == []) == (PUBLIC in declared_route.roles), declared_route.name
