"""Checkpoints of the exchange log signed with the log key, and the receipts they make possible.

While entries arrive the gateway signs, at most every ``[log] checkpoint_every_seconds``, a
checkpoint of its tree as it is (``sign``); a receipt asked for an entry newer than the last one
signs one at once (``covering``). Witnesses send back their cosignatures of a checkpoint; those of
a witness the configuration names, and that verify, are kept and published beside it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import structlog

from gateway.config import Config, WitnessConfig
from gateway.exceptions import ConfigError, LogIntegrityError, NotFoundError, ParameterError, Refusal
from gateway.exchange_log import ChainCheck
from gateway.signing import LogKey, checkpoint_text, cosignature_holds, open_signed
from gateway.store.runner import StoreRunner
from gateway.store.sql import SQLStore
from gateway.store.tree import LogTree, SignedCheckpoint
from gateway.verify_receipt import ReceiptError, VerifierKey, verify_consistency

__all__ = ["Checkpoints", "held_to_tree", "load_log_key"]

log = structlog.get_logger("supex.checkpoints")


def load_log_key(config: Config, *, create: bool = False) -> LogKey:
    """The log key of ``config``; with ``create``, made (and said so) where there is none yet."""
    path = config.key_path()
    if create and not path.exists():
        key = LogKey.new(config.log.origin, config.log.signature)
        try:
            key.save(path)
        except FileExistsError:  # made meanwhile by a gateway starting beside this one: that one is the key
            pass
        else:
            log.warning("log_key_created", path=str(path), verifier_key=key.verifier,
                        hint="publish the verifier key (supex keys show) so that departments can check receipts")
            return key
    key = LogKey.load(path)
    if key.algorithm != config.log.signature or key.name != config.log.origin:
        raise ConfigError(f"日志签名密钥与配置不符 / the log key {path} is {key.algorithm} for {key.name!r}, [log] "
                          f"asks {config.log.signature} for {config.log.origin!r}: `supex keys rotate` makes a new "
                          "one")
    return key


class Checkpoints:
    """The log's signed checkpoints, as the gateway makes and serves them."""

    def __init__(self, runner: StoreRunner, key: LogKey, witnesses: Sequence[WitnessConfig] = (),
                 retired: Sequence[str] = (), every: float = 5.0) -> None:
        self.runner, self.key, self.retired, self.every = runner, key, tuple(retired), every
        self.witnesses = {w.name: w.key for w in witnesses}
        self._signing = asyncio.Lock()
        self._told = False

    @property
    def tree(self) -> LogTree:
        return self.runner.store.tree

    async def sign(self) -> SignedCheckpoint | None:
        """The latest checkpoint, signed now if the tree has grown since (``None``: an empty log)."""
        async with self._signing:  # one signature at a time: two would sign the same size
            size = await self.runner.call(self.tree.size)
            latest = await self.runner.call(self.tree.checkpoint)
            if size == 0 or (latest is not None and latest.size >= size):
                return latest
            root = await self.runner.call(self.tree.root, size)
            store = self.runner.store
            text = checkpoint_text(self.key.name, size, root, store.clock())
            note = await asyncio.get_running_loop().run_in_executor(None, self.key.sign_note, text)
            made = SignedCheckpoint(size, store.now(), self.key.verifier, note)
            if not await self.runner.call(self.tree.keep_checkpoint, made, retired=self.retired):
                self._differs(latest)
            return await self.runner.call(self.tree.checkpoint)  # ours, or another gateway's

    def _differs(self, latest: SignedCheckpoint | None) -> None:
        """Say once that the log is signed with another key than this gateway's (its checkpoints are
        served as they are; this gateway signs none)."""
        if latest is not None and latest.signer != self.key.verifier and not self._told:
            self._told = True
            log.error("log_key_differs", signed_by=latest.signer, this_gateway=self.key.verifier,
                      hint="every gateway on one store signs with the same log key: copy [log] key_file from the "
                      "gateway that holds it, and restart this one")

    async def covering(self, seq: int) -> SignedCheckpoint:
        """A signed checkpoint whose tree holds entry ``seq``."""
        latest = await self.runner.call(self.tree.checkpoint)
        if latest is None or latest.size < seq:
            latest = await self.sign()
        if latest is None or latest.size < seq:
            if seq > await self.runner.call(self.tree.size):
                raise NotFoundError.of_entry(seq)
            # the log is signed by another gateway's key: its next checkpoint will cover the entry
            raise Refusal(503, "checkpoint_pending", f"检查点尚未覆盖该条目 / no signed checkpoint covers entry {seq} "
                          f"yet: ask again in {self.every:g} s", retry_after=math.ceil(self.every))
        return latest

    async def published(self, size: int | None = None) -> dict[str, Any]:
        """A checkpoint (the latest, or of ``size``) as the API gives it: the note with every
        cosignature kept appended, and its parts."""
        checkpoint = await self.runner.call(self.tree.checkpoint, size) if size else await self.sign()
        if checkpoint is None:
            raise NotFoundError.of_checkpoint(size or 0)
        lines = await self.runner.call(self.tree.cosignatures, checkpoint.size)
        return {"origin": self.key.name, "tree_size": checkpoint.size, "signed_at": checkpoint.at,
                "signer": checkpoint.signer, "checkpoint": checkpoint.note,
                "cosigned": checkpoint.note + "".join(line + "\n" for line in lines), "cosignatures": len(lines)}

    async def keep_cosignature(self, size: int, line: str, at: str) -> str:
        """Keep a witness's cosignature of the checkpoint of ``size``; the witness's name.
        ``ParameterError`` if no configured witness made it or it does not verify."""
        checkpoint = await self.runner.call(self.tree.checkpoint, size)
        if checkpoint is None:
            raise NotFoundError.of_checkpoint(size)
        name = line.removeprefix("\u2014 ").rpartition(" ")[0]
        key = self.witnesses.get(name)
        if key is None:
            raise ParameterError(f"未配置的见证人 / {name!r} is not a witness of this log ([[log.witness]])")
        if not cosignature_holds(checkpoint.note, line, key):
            raise ParameterError(f"见证签名无效 / the cosignature of {name!r} does not verify for the checkpoint of "
                                 f"size {size}")
        # kept beside the checkpoint, not in the log: an entry for it would grow the tree the
        # witness has just seen, and so on for ever
        await self.runner.call(self.tree.keep_cosignature, size, name, line, at)
        log.info("checkpoint_cosigned", size=size, witness=name)
        return name


def held_to_tree(store: SQLStore, outcome: ChainCheck, key: VerifierKey | None,  # noqa: PLR0911
                 retired: Sequence[str] = ()) -> ChainCheck:
    """Hold a verified log to what is served and signed of it: the root its entries make must be
    the root of the tree proofs are read from, and the log must extend the latest signed checkpoint
    by a consistency proof — so that a tail rewritten and re-hashed, or entries removed, show even
    where every entry matches its own hash. The checkpoint's signature is checked with ``key``
    (which must be the one that signed it, or one ``retired`` in its favour), or without one with
    the signer's key kept with it."""
    if not outcome.ok or outcome.size == 0 or outcome.root is None:
        return outcome
    size = outcome.size

    def failed(reason: str, bad: int | None = None) -> ChainCheck:
        return dataclasses.replace(outcome, ok=False, first_bad_seq=bad, reason=reason)

    try:
        held, head = store.tree.sizes()
        if held != head:
            return failed(f"the tree holds {held} entries, the log {head}: entries were "
                          + ("removed at the tail" if held > head else "added without the tree"),
                          min(held, head) + 1)
        if head < size:
            return failed(f"the log ends at seq {head}, before the {size} entries just verified (entries removed)",
                          head + 1)
        # entries appended while the log was verified are the next verification's: the tree of
        # the entries verified must be the one proofs are read from, and the signed one extend it
        if store.tree.root(size) != outcome.root:
            return failed("the tree proofs are read from differs from the entries (its nodes were altered)")
        if (upper := store.tree.upper_differs(size)) is not None:
            return failed(upper[1], upper[0])
        latest = store.tree.checkpoint()
        if latest is None:
            return outcome
        if key is not None and latest.signer != key.text and latest.signer not in retired:
            return failed(f"the latest checkpoint (size {latest.size}) is signed by {latest.signer}, not by this "
                          f"configuration's log key {key.text}: copy the log key to every gateway on this store")
        checkpoint = open_signed(latest.note, VerifierKey(latest.signer) if key is None or latest.signer in retired
                                 else key)
        if checkpoint.size > held:
            return failed(f"the log ends at seq {held}, before the checkpoint signed at size {checkpoint.size} "
                          "(entries removed)", held + 1)
        first, second = sorted((checkpoint.size, size))
        proof = store.tree.consistency(first, second)
        roots = (checkpoint.root, outcome.root) if checkpoint.size <= size else (outcome.root, checkpoint.root)
    except (LogIntegrityError, ReceiptError, ParameterError) as exc:
        return failed(str(exc))
    if not verify_consistency(store.tree.hash, first, second, *roots, proof):
        return failed(f"the log does not extend the checkpoint signed at size {checkpoint.size}: entries up to it "
                      "were rewritten")
    return outcome
