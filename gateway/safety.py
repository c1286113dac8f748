"""What ``supex serve`` refuses to start with, and what it warns of at every start.

- Payloads at rest in plaintext: a gateway whose connectors produce records (any of which may be
  graded ``important`` or ``core``: the grade is the record's) needs a data key, unless the
  configuration says ``allow_plaintext_at_rest = true``; then every start warns, and so does
  ``/healthz``.
- Demonstration credentials: the secrets of ``secrets.example.toml`` and the tokens of
  ``config.example.toml`` are public; a gateway holding one serves only with
  ``allow_demo_secrets = true`` (``supex demo`` makes secrets of its own).
- A secrets file that others than the gateway's user may read is a warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import stat

from gateway.config import Config
from gateway.exceptions import ConfigError

__all__ = ["DEMO_SECRETS", "DEMO_TOKENS", "at_rest_warnings", "check_before_serving"]

# the demonstration secrets of secrets.example.toml and tokens of config.example.toml (public)
DEMO_SECRETS = frozenset({
    "demo-secret-amr-change-me-0001", "demo-secret-internet-plus-change-me", "demo-secret-enforcement-change-me",
    "demo-secret-double-random-change-me", "demo-secret-double-random-files-change-me",
    "demo-secret-jinan-change-me-0001", "demo-secret-hotline-change-me-0001"})
DEMO_TOKENS = frozenset({"demo-auditor-token-change-me", "demo-admin-token-change-me"})


def _producers(config: Config) -> list[str]:
    return [c.id for c in config.connector if c.produces]


def at_rest_warnings(config: Config) -> list[str]:
    """Why payloads this configuration stores may be readable at rest (empty: they are not)."""
    producers = _producers(config)
    if config.data_cipher is not None or not producers:
        return []
    return [f"未配置数据密钥：重要和核心数据将以明文存储 / no data key: important and core payloads from "
            f"{', '.join(producers)} are stored in plaintext (allow_plaintext_at_rest = true)"]


def _demonstration_holders(config: Config) -> list[str]:
    """Who holds a published demonstration secret or token."""
    demo_digests = {hashlib.sha256(token.encode()).hexdigest() for token in DEMO_TOKENS}
    holders = [f"connector {cid!r}" for cid, secret in config.secrets.items()
               if secret in DEMO_SECRETS or "change-me" in secret.lower()]
    for role, people in (("auditor", config.auditor), ("admin", config.admin)):
        holders += [f"{role} {person.name!r}" for person in people if person.token_sha256.lower() in demo_digests]
    return holders


def check_before_serving(config: Config) -> list[str]:
    """Refuse (``ConfigError``) what the gateway must not serve with; the warnings to give."""
    gateway = config.gateway
    warnings = at_rest_warnings(config)
    if warnings and not gateway.allow_plaintext_at_rest:
        raise ConfigError(
            f"未配置数据密钥，拒绝启动 / no data key is configured while connectors ({', '.join(_producers(config))}) "
            "produce records that may be important or core data, which would be stored in plaintext: set "
            "data_key_env or data_key_file (supex keys generate --output FILE makes a key file), or, knowingly, "
            "allow_plaintext_at_rest = true in [gateway]")
    holders = _demonstration_holders(config)
    if holders and not gateway.allow_demo_secrets:
        raise ConfigError(
            f"使用了演示密钥，拒绝启动 / {', '.join(holders)} holds a demonstration secret or token (published with "
            "supex, so anyone can sign as it): give it a secret of its own, or, for a demonstration only, set "
            "allow_demo_secrets = true in [gateway]")
    if holders:
        warnings.append(f"演示密钥 / demonstration credentials in use ({', '.join(holders)}): for demonstrations only")
    if gateway.secrets_file:
        path = config.base_dir / gateway.secrets_file
        with contextlib.suppress(OSError):
            if (mode := stat.S_IMODE(path.stat().st_mode)) & 0o077:
                warnings.append(f"密钥文件可被其他用户读取 / the secrets file {path} is readable by others (mode "
                                f"{mode:04o}): chmod 600 it")
    return warnings
