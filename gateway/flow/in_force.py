"""The policy in force: the configuration's connectors and sharing rules, with the rules and
connector states changed at run time (kept in the store, for every gateway on it).

``PolicyInForce`` is the one holder of it and the one way to change it: the admin API's changes go
through ``change``, another gateway's are taken up by ``follow``. The push handler and the
sources route with it, the inbox and the deliverer share with it, the authentication reads the
connectors in force from it; the store itself holds no policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.config import Config, ConnectorConfig
from gateway.store import SQLStore
from gateway.store.runner import StoreRunner
from policy import Policy

__all__ = ["PolicyInForce", "policy_in_store", "rules_in_store"]


def rules_in_store(config: Config, store: SQLStore) -> dict[str, dict[str, Any]]:
    """The sharing rules in force: the configuration's, replaced by those changed at run time."""
    rules = {r.id: r.model_dump(mode="json") for r in config.sharing}
    rules.update(store.runtime.rules())
    return rules


def policy_in_store(config: Config, store: SQLStore) -> Policy:
    """The policy with what the store holds of the rules and connector states changed at run time
    (``PolicyDefinitionError`` if they no longer fit the configuration)."""
    return config.policy(store.runtime.rules(), store.runtime.connector_states())


class PolicyInForce:
    """The policy this gateway routes and shares with, and the changes made to it while it runs."""

    def __init__(self, config: Config, runner: StoreRunner) -> None:
        self.config, self.runner = config, runner
        self.policy: Policy = config.policy()  # until ``load``: the configuration's alone
        self.seen = 0  # the latest ``config_changed`` entry taken up
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change taken up (a deliverer looks at its outbox again)."""
        self._listeners.append(listener)

    @property
    def connectors(self) -> Mapping[str, ConnectorConfig]:
        """The connectors as the policy in force has them (some perhaps disabled at run time)."""
        parties: Mapping[str, Any] = self.policy.parties  # the policy is built from the configuration's connectors
        return parties

    def enabled(self, connector: str) -> bool:
        """Whether ``connector`` is in force (an admin may disable it at run time)."""
        return bool(self.policy.parties[connector].enabled)

    async def load(self) -> int:
        """Take up the rules and connector states the store holds, and route with them whatever was
        stored without a policy; returns how many stored records that routed."""
        return await self._take_up(lambda store: policy_in_store(self.config, store))

    async def _take_up(self, build: Callable[[SQLStore], Policy]) -> int:
        """On the store thread: the policy ``build`` makes, in force from now on, and what was stored
        without a policy routed with it; then the listeners told."""
        def take_up() -> int:
            store = self.runner.store
            policy = build(store)  # raises before anything is taken up
            self.seen, self.policy = store.runtime.last_change(), policy
            return store.routing.catch_up(policy)

        routed = await self.runner.call(take_up)
        for listener in self._listeners:
            listener()
        return routed

    async def follow(self) -> int:
        """Load again if a change has been logged since the last one taken up (by this gateway or
        another on the database); the seq of the change now taken up."""
        latest = await self.runner.call(self.runner.store.runtime.last_change)
        if latest != self.seen:
            await self.load()
        return self.seen

    async def rules(self) -> dict[str, dict[str, Any]]:
        """The sharing rules in force, by id."""
        return await self.runner.call(rules_in_store, self.config, self.runner.store)

    async def change(self, keep: Callable[[SQLStore], None], *, rule: dict[str, Any] | None = None,
                     state: tuple[str, bool] | None = None) -> None:
        """Change the policy in force: the rules and states in force with ``rule`` (added or
        replaced) or ``state`` (a connector enabled or disabled) are checked against the connectors
        and schemas first (``PolicyDefinitionError``, nothing kept), then kept by ``keep`` (which
        logs the change) and routed with from now on."""
        def change(store: SQLStore) -> Policy:
            rules, states = rules_in_store(self.config, store), store.runtime.connector_states()
            if rule is not None:
                rules[rule["id"]] = rule
            if state is not None:
                states[state[0]] = state[1]
            policy = self.config.policy(rules, states)  # checked before anything is kept
            keep(store)
            return policy

        await self._take_up(change)
