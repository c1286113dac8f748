"""The log key and the notes it signs: checkpoints of the exchange log's tree in the C2SP
signed-note format, and witnesses' cosignatures (C2SP tlog-cosignature, Ed25519).

A log key is Ed25519 (through ``cryptography``) or SM2 with SM3 (GB/T 32918, through ``gmssl``,
with the standard user ID ``1234567812345678``), kept in a TOML file readable by the gateway's
user alone. Its public half is published as a verifier key, ``name+id+base64(type || key)``:
type ``0x01`` for Ed25519; for SM2, which signed notes assign no byte, ``0xff`` followed by
``sm2``. The checkpoint's text is the log's origin, the tree size, the base64 root hash, and one
extension line, ``time`` and the signing moment (UTC, RFC 3339).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmssl import sm2

from gateway.exceptions import ConfigError
from gateway.verify_receipt import (
    ED25519,
    SM2,
    SM2_TYPE,
    Checkpoint,
    ReceiptError,
    VerifierKey,
    open_checkpoint,
    parse_note,
)

__all__ = ["ALGORITHMS", "LogKey", "checkpoint_text", "cosign", "cosignature_holds", "open_signed", "retired_keys",
           "verify_with", "witness_verifier"]

ALGORITHMS = (ED25519, SM2)
_COSIGNATURE = b"\x04"  # tlog-cosignature: timestamped Ed25519
_SM2_CURVE = sm2.default_ecc_table


def _key_id(name: str, kind: bytes, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + kind + public).digest()[:4]


@dataclass(frozen=True)
class LogKey:
    """A private signing key with its name (the log's origin, or a witness's name)."""

    name: str
    algorithm: str
    private: bytes
    created: str

    @classmethod
    def new(cls, name: str, algorithm: str) -> LogKey:
        """A fresh key."""
        if algorithm == ED25519:
            raw = Ed25519PrivateKey.generate().private_bytes_raw()
        elif algorithm == SM2:
            n = int(_SM2_CURVE["n"], 16)
            raw = (secrets.randbelow(n - 2) + 1).to_bytes(32, "big")
        else:
            raise ConfigError(f"未知的签名算法 / unknown signature algorithm {algorithm!r}: use ed25519 or sm2")
        _valid_name(name)
        return cls(name, algorithm, raw, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def public(self) -> bytes:
        """The public key: 32 bytes (Ed25519) or the point's 64 bytes x || y (SM2)."""
        if self.algorithm == ED25519:
            return Ed25519PrivateKey.from_private_bytes(self.private).public_key().public_bytes_raw()
        signer = sm2.CryptSM2(private_key=self.private.hex(), public_key="")
        point = signer._kg(int(self.private.hex(), 16), _SM2_CURVE["g"])  # d·G
        return bytes.fromhex(point)

    @property
    def kind(self) -> bytes:
        """The signature type bytes of the key's id and verifier key."""
        return b"\x01" if self.algorithm == ED25519 else SM2_TYPE

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.kind, self.public)

    @property
    def verifier(self) -> str:
        """The verifier key to publish: ``name+id+base64(type || public key)``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(self.kind + self.public).decode()}"

    def sign(self, message: bytes) -> bytes:
        """The key's signature of ``message`` (Ed25519, or SM2 over SM3(Z || message) as r || s)."""
        if self.algorithm == ED25519:
            return Ed25519PrivateKey.from_private_bytes(self.private).sign(message)
        signer = sm2.CryptSM2(private_key=self.private.hex(), public_key=self.public.hex())
        n = int(_SM2_CURVE["n"], 16)
        k = f"{secrets.randbelow(n - 2) + 1:064x}"  # the per-signature secret, from the system's CSPRNG
        return bytes.fromhex(signer.sign_with_sm3(message, k))

    def sign_note(self, text: str) -> str:
        """``text`` (ending in a newline) as a signed note with this key's signature."""
        signature = base64.b64encode(self.key_id + self.sign(text.encode())).decode()
        return f"{text}\n\u2014 {self.name} {signature}\n"

    # ---- the key file ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the key to ``path``, new, readable by this user alone (``FileExistsError`` if
        anything is there already: a key is never overwritten)."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # new, for writing, readable by this user alone, never through a link planted there
        # (``FileExistsError`` if anything is there)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write("# supex log key: private, readable by the gateway's user alone\n"
                       f'name = "{self.name}"\nalgorithm = "{self.algorithm}"\n'
                       f'private = "{base64.b64encode(self.private).decode()}"\ncreated = "{self.created}"\n')

    @classmethod
    def load(cls, path: Path) -> LogKey:
        """The key in ``path``; ``ConfigError`` saying what to do if it is missing or unreadable."""
        try:
            if path.stat().st_mode & 0o077:
                raise ConfigError(f"密钥文件权限过宽 / {path} can be read by others: chmod 600 {path}")
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            key = cls(str(data["name"]), str(data["algorithm"]), base64.b64decode(data["private"], validate=True),
                      str(data.get("created", "")))
        except FileNotFoundError:
            raise ConfigError(f"没有日志签名密钥 / no log key at {path}: create one with `supex keys create "
                              "--config FILE`") from None
        except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"无法读取日志签名密钥 / the log key {path} cannot be read: {exc}") from None
        if key.algorithm not in ALGORITHMS or len(key.private) != 32:
            raise ConfigError(f"日志签名密钥无效 / {path} is not an Ed25519 or SM2 key")
        return key


def retired_keys(key_path: Path) -> list[str]:
    """The verifier keys the log signed with before its key was rotated, oldest first."""
    listed = key_path.with_name(key_path.name + ".retired")
    return [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if listed.exists() else []


def _valid_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ConfigError(f"密钥名称无效 / a key's name must be non-empty, without spaces or '+': {name!r}")


def checkpoint_text(origin: str, size: int, root: bytes, at: dt.datetime) -> str:
    """A checkpoint's note text (to be signed)."""
    moment = at.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {moment}\n"


def verify_with(key: VerifierKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``key``'s of ``message``, Ed25519 or SM2."""
    if key.algorithm == ED25519:
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True
    if len(signature) != 64:
        return False
    checker = sm2.CryptSM2(private_key="", public_key=key.public_key.hex())
    try:
        return bool(checker.verify_with_sm3(signature.hex(), message))
    except (ValueError, TypeError, ZeroDivisionError):
        return False


def open_signed(note: str, key: VerifierKey) -> Checkpoint:
    """The checkpoint of a note signed by ``key`` (Ed25519 or SM2); ``ReceiptError`` otherwise."""
    return open_checkpoint(note, key, verify_with)


# ---- cosignatures (tlog-cosignature v1) ------------------------------------------------------------

def _cosigned(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(witness: LogKey, note: str, at: dt.datetime) -> str:
    """The witness's cosignature line of a checkpoint note: ``— name base64(id || u64 time || sig)``."""
    if witness.algorithm != ED25519:
        raise ConfigError("见证人密钥应为 Ed25519 / a witness's key must be Ed25519 (tlog-cosignature v1)")
    body, _ = parse_note(note)
    timestamp = int(at.timestamp())
    key_id = _key_id(witness.name, _COSIGNATURE, witness.public)
    signature = witness.sign(_cosigned(body, timestamp))
    return f"\u2014 {witness.name} {base64.b64encode(key_id + timestamp.to_bytes(8, 'big') + signature).decode()}"


def witness_verifier(witness: LogKey) -> str:
    """The verifier key of a witness: ``name+id+base64(0x04 || public key)``."""
    kind = _COSIGNATURE
    return f"{witness.name}+{_key_id(witness.name, kind, witness.public).hex()}+" \
           f"{base64.b64encode(kind + witness.public).decode()}"


def cosignature_holds(note: str, line: str, witness_key: str) -> bool:
    """Whether ``line`` is the cosignature of the witness ``witness_key`` (its verifier key) of the
    checkpoint ``note``."""
    try:
        name, key_id_hex, encoded = witness_key.strip().split("+", 2)
        raw_key = base64.b64decode(encoded, validate=True)
        if raw_key[:1] != _COSIGNATURE or len(raw_key) != 33:
            return False
        public = raw_key[1:]
        if _key_id(name, _COSIGNATURE, public).hex() != key_id_hex:
            return False
        body, _ = parse_note(note)
        prefix = f"\u2014 {name} "
        if not line.startswith(prefix):
            return False
        raw = base64.b64decode(line[len(prefix):], validate=True)
        if raw[:4].hex() != key_id_hex or len(raw) != 4 + 8 + 64:
            return False
        timestamp = int.from_bytes(raw[4:12], "big")
        Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], _cosigned(body, timestamp))
    except (ValueError, ReceiptError, InvalidSignature):
        return False
    return True
