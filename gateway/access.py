"""Which roles may use each route, declared where the route is registered: deny by default.

Every route is added through ``Routes`` with the roles it admits — ``connector``, ``auditor``,
``admin`` (by credential), ``console`` (an auditor's console session) or ``public`` (anyone). An
app with a route that declares none refuses to start (``check_declared``), so a route added
without a thought for who may call it can never be open by accident.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from aiohttp import web

__all__ = ["ACCESS", "CONSOLE", "PUBLIC", "ROLES", "Routes", "check_declared"]

PUBLIC, CONSOLE = "public", "console"
ROLES = frozenset({"connector", "auditor", "admin", CONSOLE, PUBLIC})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACCESS = web.AppKey("access", dict[str, frozenset[str]])


class Routes:
    """An app's router, each route registered with the roles it admits."""

    def __init__(self, app: web.Application) -> None:
        self.router = app.router
        self.access = app.setdefault(ACCESS, {})

    def _declare(self, name: str, roles: Collection[str]) -> None:
        admitted = frozenset(roles)
        if not admitted or not admitted <= ROLES or (PUBLIC in admitted and len(admitted) > 1):
            raise ValueError(f"route {name!r}: roles must be 'public' alone or some of {sorted(ROLES - {PUBLIC})}")
        if name in self.access:
            raise ValueError(f"route {name!r} is declared twice")
        self.access[name] = admitted

    def add(self, method: str, path: str, handler: Handler, *, name: str, roles: Collection[str]) -> None:
        """Register ``method path`` as ``name``, admitting ``roles``."""
        self._declare(name, roles)
        if method == "GET":
            self.router.add_get(path, handler, name=name)
        else:
            self.router.add_route(method, path, handler, name=name)

    def static(self, prefix: str, folder: Path | str, *, name: str) -> None:
        """Files under ``folder`` served at ``prefix`` to anyone."""
        self._declare(name, {PUBLIC})
        self.router.add_static(prefix, str(folder), name=name)


def check_declared(app: web.Application) -> None:
    """Refuse an app with a route that declares no roles (``ValueError`` naming it)."""
    access = app.get(ACCESS, {})
    undeclared = sorted({f"{route.method} {route.resource.canonical if route.resource else '?'}"
                         for route in app.router.routes() if (route.name or "") not in access})
    if undeclared:
        raise ValueError(f"routes without declared roles (deny by default): {', '.join(undeclared)}")
