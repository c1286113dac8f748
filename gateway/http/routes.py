"""Every route declared once: its method, path, handler, the roles it admits and its OpenAPI entry.

A request with a query parameter its route's entry does not declare is refused (400), never
served as if the parameter were not there: ``?since=`` where the endpoint takes ``from`` would
otherwise quietly filter nothing.

The router, the role each route admits (deny by default) and the OpenAPI document are all built
from the same ``Route`` values, which each room of ``gateway.http`` lists in its ``ROUTES``. The
roles are ``connector`` (a signed connector), ``auditor`` and ``admin`` (by bearer token),
``console`` (an auditor's console session) and ``public`` (anyone). A route that declares none,
or an unknown one, is refused when the app is built, so no route is ever open by accident.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["ACCESS", "CONSOLE", "PUBLIC", "QUERY_PARAMETERS", "ROLES", "Route", "check_declared", "install_routes"]

PUBLIC, CONSOLE = "public", "console"
ROLES = frozenset({"connector", "auditor", "admin", CONSOLE, PUBLIC})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACCESS = web.AppKey("access", dict[str, frozenset[str]])
# the query parameters each route takes, by name (``None``: not checked, a console page)
QUERY_PARAMETERS = web.AppKey("query_parameters", dict[str, frozenset[str] | None])


@dataclass(frozen=True)
class Route:
    """One route: ``name`` is its aiohttp name and, in camelCase, its OpenAPI ``operationId``;
    ``doc`` its OpenAPI operation without ``operationId`` and ``security`` (made from ``roles``),
    ``None`` for a route the document leaves out (console pages). With ``static``, the files
    under that folder are served at ``path`` (to anyone)."""

    method: str
    path: str
    handler: Handler | None
    name: str
    roles: frozenset[str]
    doc: dict[str, Any] | None = field(default=None, compare=False)
    static: Path | None = None

    def __post_init__(self) -> None:
        if not self.roles or not self.roles <= ROLES or (PUBLIC in self.roles and len(self.roles) > 1):
            raise ValueError(f"route {self.name!r}: roles must be 'public' alone or some of "
                             f"{sorted(ROLES - {PUBLIC})}")
        if (self.handler is None) == (self.static is None):
            raise ValueError(f"route {self.name!r}: a handler or a static folder, not both")

    @property
    def query_parameters(self) -> frozenset[str] | None:
        """The query parameters its OpenAPI entry declares (``None`` without an entry)."""
        if self.doc is None:
            return None
        return frozenset(p["name"] for p in self.doc.get("parameters", ()) if p["in"] == "query")


def route(method: str, path: str, handler: Handler, *, name: str, roles: Iterable[str],
          doc: dict[str, Any] | None = None) -> Route:
    """A ``Route``, its roles given as any iterable."""
    return Route(method, path, handler, name, frozenset(roles), doc)


def install_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Add ``routes`` to ``app``'s router, each with the roles it admits (``ValueError`` for a name
    declared twice)."""
    access, parameters = app.setdefault(ACCESS, {}), app.setdefault(QUERY_PARAMETERS, {})
    for declared in routes:
        if declared.name in access:
            raise ValueError(f"route {declared.name!r} is declared twice")
        access[declared.name] = declared.roles
        parameters[declared.name] = declared.query_parameters
        if declared.static is not None:
            app.router.add_static(declared.path, str(declared.static), name=declared.name)
        elif declared.method == "GET":
            app.router.add_get(declared.path, declared.handler, name=declared.name)  # type: ignore[arg-type]
        else:
            app.router.add_route(declared.method, declared.path, declared.handler,  # type: ignore[arg-type]
                                 name=declared.name)


def check_declared(app: web.Application) -> None:
    """Refuse an app with a route that declares no roles (``ValueError`` naming it)."""
    access = app.get(ACCESS, {})
    undeclared = sorted({f"{r.method} {r.resource.canonical if r.resource else '?'}"
                         for r in app.router.routes() if (r.name or "") not in access})
    if undeclared:
        raise ValueError(f"routes without declared roles (deny by default): {', '.join(undeclared)}")
