"""Encryption at rest of ``important`` and ``core`` payloads (GB/T 39786 level 3).

A key ring of master keys (32 bytes each, base64) comes from the environment variable the
configuration names (``data_key_env``) or from a key file (``data_key_file``): one key a line or
comma-separated, the first one current. Each master key yields, by HKDF-SHA256, the key of the
cipher in use: SM4-GCM where the OpenSSL build has SM4, AES-256-GCM otherwise. A sealed payload
carries the cipher, the master key's id and its nonce, so that older keys still open what they
sealed, and ``supex keys rotate`` can find what is not yet under the current key. The row a
payload belongs to is bound in as associated data: a sealed payload copied to another row does
not open.

    SPX1 | cipher (1 byte) | key id (8 bytes) | nonce (12 bytes) | ciphertext and tag
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.exceptions import ConfigError, DataKeyError

__all__ = ["SEALED_GRADES", "DataCipher", "generate_key", "is_sealed", "load_key_ring"]

MAGIC = b"SPX1"
SEALED_GRADES = frozenset({"important", "core"})
_SM4, _AES = 1, 2
_NAMES = {_SM4: "sm4-gcm", _AES: "aes-256-gcm"}
_HEADER = len(MAGIC) + 1 + 8 + 12


@cache
def sm4_available() -> bool:
    """Whether this OpenSSL build offers SM4 in GCM mode."""
    try:
        encryptor = Cipher(algorithms.SM4(bytes(16)), modes.GCM(bytes(12))).encryptor()
        encryptor.update(b"x")
        encryptor.finalize()
    except Exception:  # noqa: BLE001 - any refusal means: not available here
        return False
    return True


def generate_key() -> str:
    """A new random master key, base64, for the key ring."""
    return base64.b64encode(os.urandom(32)).decode()


def key_id(master: bytes) -> str:
    """The id of a master key: 16 hex digits of its SHA-256, stored with what it seals."""
    return hashlib.sha256(b"supex data key id\x00" + master).hexdigest()[:16]


def _derive(master: bytes, cipher: int) -> bytes:
    length = 16 if cipher == _SM4 else 32
    hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"supex {_NAMES[cipher]} v1".encode())
    return hkdf.derive(master)


def is_sealed(blob: bytes) -> bool:
    """Whether a stored payload is sealed (plaintext payloads are JSON, XML or text, never this)."""
    return bytes(blob[:4]) == MAGIC


class DataCipher:
    """Seals and opens payloads with a key ring; the first key seals, every key opens."""

    def __init__(self, masters: Sequence[bytes], *, prefer_sm4: bool = True) -> None:
        if not masters:
            raise ConfigError("数据密钥为空 / the data key ring is empty")
        self.cipher = _SM4 if prefer_sm4 and sm4_available() else _AES
        self.current = key_id(masters[0])
        self._masters = {key_id(m): m for m in masters}
        self._keys: dict[tuple[str, int], bytes] = {}

    @property
    def algorithm(self) -> str:
        """The cipher new payloads are sealed with."""
        return _NAMES[self.cipher]

    @property
    def key_ids(self) -> list[str]:
        """The ids of the keys in the ring, the current one first."""
        return [self.current, *(k for k in self._masters if k != self.current)]

    def _key(self, kid: str, cipher: int) -> bytes:
        key = self._keys.get((kid, cipher))
        if key is None:
            master = self._masters.get(kid)
            if master is None:
                raise DataKeyError(f"数据由密钥 {kid} 加密，但该密钥未配置 / a payload is sealed with key {kid}, which "
                                   "is not in the configured key ring: add it back (see docs/security.md)")
            key = self._keys[(kid, cipher)] = _derive(master, cipher)
        return key

    def seal(self, plaintext: bytes, bound_to: bytes) -> bytes:
        """``plaintext`` sealed with the current key, bound to its row (``bound_to``)."""
        nonce = os.urandom(12)
        key = self._key(self.current, self.cipher)
        header = MAGIC + bytes([self.cipher]) + bytes.fromhex(self.current) + nonce
        if self.cipher == _AES:
            return header + AESGCM(key).encrypt(nonce, plaintext, header + bound_to)
        encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(header + bound_to)
        return header + encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag

    def open(self, sealed: bytes, bound_to: bytes) -> bytes:
        """The plaintext of a sealed payload (a plaintext one is returned as it is)."""
        sealed = bytes(sealed)
        if not is_sealed(sealed):
            return sealed
        header, body = sealed[:_HEADER], sealed[_HEADER:]
        cipher, kid, nonce = header[4], header[5:13].hex(), header[13:_HEADER]
        key = self._key(kid, cipher)
        try:
            if cipher == _AES:
                return AESGCM(key).decrypt(nonce, body, header + bound_to)
            decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, body[-16:])).decryptor()
            decryptor.authenticate_additional_data(header + bound_to)
            return decryptor.update(body[:-16]) + decryptor.finalize()
        except InvalidTag as exc:
            raise DataKeyError("密文校验失败（被改动或移到了别处）/ a sealed payload fails its check: it was altered "
                               "or moved to another row") from exc

    @staticmethod
    def key_id_of(sealed: bytes) -> str | None:
        """The id of the key a payload is sealed with (``None``: plaintext)."""
        return bytes(sealed[5:13]).hex() if is_sealed(sealed) else None


def _parse(text: str, where: str) -> list[bytes]:
    keys = []
    parts = [part.strip() for line in text.splitlines() for part in line.partition("#")[0].split(",")]
    for part in parts:
        if not part:
            continue
        try:
            key = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"{where}: 数据密钥不是 base64 / a data key is not base64") from exc
        if len(key) != 32:  # 256-bit master keys
            raise ConfigError(f"{where}: 数据密钥应为 32 字节 / a data key must be 32 bytes (base64 of 32 random "
                              f"bytes), got {len(key)}")
        keys.append(key)
    return keys


def load_key_ring(env_name: str | None, key_file: Path | None, environ: Mapping[str, str]) -> DataCipher | None:
    """The key ring the configuration names, from the environment or a key file (``None``: none named)."""
    if env_name is None and key_file is None:
        return None
    masters: list[bytes] = []
    if env_name is not None:
        value = environ.get(env_name)
        if not value:
            raise ConfigError(f"环境变量 {env_name} 未设置 / the data key variable {env_name} is not set: put the "
                              "base64 of 32 random bytes in it (supex keys generate prints one)")
        masters += _parse(value, env_name)
    if key_file is not None:
        try:
            text = key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"无法读取密钥文件 / cannot read the data key file {key_file}: {exc}") from exc
        masters += _parse(text, str(key_file))
    return DataCipher(masters)
