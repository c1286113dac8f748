"""The one place a stored record is shared with a consumer, for pull (the inbox) and push (the
deliverer) alike: the policy in force decides again whether the consumer may have it now (an
agreement may have been withdrawn or have expired since routing), and shapes what it receives —
fields left out, masks applied — with the digest of exactly that for the log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from gateway.exchange_log import shared_digest
from gateway.flow.in_force import PolicyInForce
from gateway.store.model import InboxPage, Sharing
from gateway.store.runner import StoreRunner
from policy import Policy, local_today

__all__ = ["Sharer", "share"]


def share(policy: Policy, record: dict[str, Any], consumer: str, today: dt.date, log_hash: str) -> Sharing:
    """``record`` (as stored) for ``consumer`` under ``policy`` on ``today``."""
    decision = policy.decide(record, consumer, today)
    if not decision.allowed:
        return Sharing(record, decision)
    shared = policy.share(record, decision)
    return Sharing(record, decision, shared, shared_digest(log_hash, shared))


class Sharer:
    """Shares stored records with consumers under the policy in force."""

    def __init__(self, in_force: PolicyInForce, runner: StoreRunner) -> None:
        self.in_force, self.runner = in_force, runner
        self.log_hash = runner.store.log_hash

    def for_consumer(self, consumer: str, today: dt.date) -> Callable[[dict[str, Any]], Sharing]:
        """A function sharing records with ``consumer`` on ``today`` under the policy in force now."""
        policy = self.in_force.policy
        return lambda record: share(policy, record, consumer, today, self.log_hash)

    async def inbox(self, consumer: str, after: int | None, limit: int) -> InboxPage:
        """The next page of ``consumer``'s inbox, each record as it may see it now (the store's day)."""
        store = self.runner.store
        today = local_today(store.clock())
        return await self.runner.call(store.inbox.page, consumer, after, limit,
                                      share=self.for_consumer(consumer, today),
                                      per_day=self.in_force.policy.read_limit(consumer))
