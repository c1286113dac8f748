"""How a pushed record relates to the stored one: accepted, duplicate, stale or a conflict.

With a version, an older one than stored is stale; without, identical content is a
duplicate and different content is an update the gateway numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.issues import issue

__all__ = ["VersionVerdict", "decide"]


@dataclass(frozen=True, slots=True)
class VersionVerdict:
    """The status of a pushed record and the version it is stored (or was known) under."""

    status: str
    version: int | None
    error: dict[str, str] | None = None


def decide(stored: tuple[int, str, int] | None, version: int | None, digest: str) -> VersionVerdict:
    """Decide from the stored ``(version, digest, seq)`` (or ``None``) and the pushed version and digest."""
    if stored is None:
        return VersionVerdict("accepted", version if version is not None else 1)
    stored_version, stored_digest, _ = stored
    same = digest == stored_digest
    if version is None:  # the gateway numbers an update itself
        return VersionVerdict("duplicate" if same else "accepted", stored_version if same else stored_version + 1)
    if version < stored_version:
        return VersionVerdict("stale", stored_version)
    if version > stored_version:
        return VersionVerdict("accepted", version)
    if same:
        return VersionVerdict("duplicate", stored_version)
    return VersionVerdict("rejected", None, issue("/version", "version_conflict", value=str(version)).as_dict())
