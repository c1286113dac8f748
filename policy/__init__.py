"""Routing, sharing-scope and confidentiality rules: a pure core.

Records and rules in, decisions and shared records out; no network, no store. Lookups that need
the store (the matter catalogue, who produced a record) are passed in as functions.
"""

from policy.decision import ENVELOPE, Decision, Party, Policy, Route, Shared, local_today
from policy.exceptions import PolicyDefinitionError
from policy.masks import compile_mask
from policy.rules import SharingRule, data_paths, parse_duration

__all__ = [
    "ENVELOPE",
    "Decision",
    "Party",
    "Policy",
    "PolicyDefinitionError",
    "Route",
    "Shared",
    "SharingRule",
    "compile_mask",
    "data_paths",
    "local_today",
    "parse_duration",
]
