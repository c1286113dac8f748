"""``supex backup`` and ``supex keys``: the store copied, and its data keys made, counted and rotated."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gateway.cli.common import audited, open_configured_store, store_of
from gateway.config import load_config
from gateway.encryption import generate_key
from gateway.exceptions import ConfigError
from gateway.store.base import create_private
from gateway.terminal import EXIT_OK, progress_bar

__all__ = ["backup", "keys_generate", "keys_rotate", "keys_status"]


def backup(args: argparse.Namespace) -> int:
    """``supex backup``: a consistent copy of the store beside the running gateways, and the
    checkpoint a restore of it verifies against."""
    store = store_of(args)
    try:
        seq, head = store.log.head()  # the copy holds at least this much of the log
        store.backup(args.target)
        audited(store, args, f"backup to {args.target.name}")
    finally:
        store.close()
    print(f"backup written: {args.target} ({args.target.stat().st_size:,} bytes), exchange log to seq {seq} / "
          "备份完成")
    print(f"after restoring it, verify with: supex log verify --config <its configuration> --checkpoint {seq}:{head}")
    return EXIT_OK


def keys_generate(args: argparse.Namespace) -> int:
    """``supex keys generate``: a new random data key, printed or written to a new key file (0600)."""
    if args.output is None:
        print(generate_key())
        return EXIT_OK
    try:
        fd = create_private(args.output)
    except FileExistsError as exc:
        raise ConfigError(f"密钥文件已存在，未覆盖 / {args.output} exists and is left as it is: a key file is never "
                          "overwritten (add a new key first in it to rotate; see supex keys rotate)") from exc
    except OSError as exc:
        raise ConfigError(f"无法创建密钥文件 / cannot create {args.output}: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(generate_key() + "\n")
    print(f"data key written to {args.output} (mode 0600) / 数据密钥已写入", file=sys.stderr)
    return EXIT_OK


def _keyed_store(args: argparse.Namespace) -> Any:
    config = load_config(args.config, secrets_of=())
    if config.data_cipher is None:
        raise ConfigError(f"{args.config}: 未配置数据密钥 / no data key is configured (data_key_env or data_key_file)")
    return open_configured_store(config, required=True, cipher=config.data_cipher)


def keys_status(args: argparse.Namespace) -> int:
    """``supex keys status``: payloads by the key that seals them."""
    store = _keyed_store(args)
    try:
        status = store.sealed.key_status()
        cipher = store.sealed.cipher
    finally:
        store.close()
    print(f"current key {cipher.current} ({cipher.algorithm}); keys in the ring: {', '.join(cipher.key_ids)}")
    for table, counts in status.items():
        described = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "none"
        print(f"{table}: {described}")
    return EXIT_OK


def keys_rotate(args: argparse.Namespace) -> int:
    """``supex keys rotate``: seal everything again under the current key, resumably, with a progress
    bar; with ``--log``, a new log key instead."""
    if args.log:
        from gateway.cli.transparency import keys_rotate_log  # noqa: PLC0415 - loaded by the command that uses it
        return keys_rotate_log(args)
    store = _keyed_store(args)
    try:
        before = store.sealed.key_status()
        current = store.sealed.cipher.current
        total = sum(n for counts in before.values() for key, n in counts.items() if key != current)
        done = 0
        with progress_bar() as progress:
            task = progress.add_task("sealing again", total=total)
            for done in store.sealed.rotate_keys(by="supex keys rotate", batch=args.batch):
                progress.update(task, completed=done)
    finally:
        store.close()
    print(f"{done} payloads sealed again under key {current} / 已用当前密钥重新加密 {done} 条")
    return EXIT_OK
