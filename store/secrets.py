"""Secrets at rest: a master key from the environment (or a 0600 key file), and AES-GCM sealed files.

Secrets (JWT key, TOTP seeds, venue API secrets) never leave this module in plain text except
to the code that needs them; they are not logged, put in events, projections or errors. The gateway
(users, sessions, the JWT key) and the connectors (venue credentials) both keep theirs here.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_ENV = "SQ_MASTER_KEY"
_FORMAT = b"sq-sealed-v1"


class SecretError(RuntimeError):
    """A secret could not be loaded or opened; the message never contains the secret itself."""


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`, readable by the owner only (temp, fsync, rename, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_master_key(secrets_dir: Path, *, create: bool = True) -> bytes:
    """The 32-byte master key: $SQ_MASTER_KEY (base64), else `secrets_dir/master.key` (made on first use)."""
    encoded = os.environ.get(MASTER_KEY_ENV)
    if encoded:
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise SecretError(f"{MASTER_KEY_ENV} is not valid base64") from exc
        if len(key) != 32:
            raise SecretError(f"{MASTER_KEY_ENV} must decode to 32 bytes, it decodes to {len(key)}")
        return key
    path = secrets_dir / "master.key"
    if path.exists():
        key = base64.b64decode(path.read_bytes().strip())
        if len(key) != 32:
            raise SecretError(f"{path} does not hold a 32-byte base64 key")
        return key
    if not create:
        raise SecretError(f"no master key: set {MASTER_KEY_ENV} or create {path}")
    key = AESGCM.generate_key(bit_length=256)
    write_private(path, base64.b64encode(key) + b"\n")
    return key


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte subkey for one purpose (HKDF-SHA256), so one leaked subkey exposes nothing else."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"sq:{purpose}".encode()).derive(master)


class SealedValues:
    """Small values sealed with AES-GCM under a purpose-derived key, bound to their name (a KV key).

    The name is authenticated data, so a sealed value copied under another key fails to open.
    """

    def __init__(self, master: bytes, purpose: str) -> None:
        self._aead = AESGCM(derive_key(master, purpose))
        self._prefix = _FORMAT + purpose.encode() + b":"

    def seal(self, name: str, document: dict[str, Any]) -> bytes:
        """Encrypt a JSON document for `name`: format marker, nonce, ciphertext."""
        nonce = os.urandom(12)
        plain = json.dumps(document, sort_keys=True).encode()
        return _FORMAT + nonce + self._aead.encrypt(nonce, plain, self._prefix + name.encode())

    def open(self, name: str, blob: bytes) -> dict[str, Any]:
        """Decrypt what seal() made for `name`; SecretError (naming only `name`) if it is not ours or altered."""
        if not blob.startswith(_FORMAT) or len(blob) < len(_FORMAT) + 12 + 16:
            raise SecretError(f"value of {name} is not a ShrivenQuant sealed value")
        nonce = blob[len(_FORMAT):len(_FORMAT) + 12]
        try:
            plain = self._aead.decrypt(nonce, blob[len(_FORMAT) + 12:], self._prefix + name.encode())
        except InvalidTag as exc:
            raise SecretError(f"value of {name} cannot be opened: wrong master key or it was altered") from exc
        document: dict[str, Any] = json.loads(plain)
        return document


class SealedFile:
    """A JSON document stored encrypted with AES-GCM under a purpose-derived key."""

    def __init__(self, path: Path, master: bytes, purpose: str) -> None:
        self.path = path
        self._aead = AESGCM(derive_key(master, purpose))
        self._aad = _FORMAT + purpose.encode()

    def read(self) -> dict[str, Any]:
        """The decrypted document, or {} when the file does not exist yet."""
        if not self.path.exists():
            return {}
        blob = self.path.read_bytes()
        if not blob.startswith(_FORMAT) or len(blob) < len(_FORMAT) + 12 + 16:
            raise SecretError(f"{self.path} is not a ShrivenQuant sealed file")
        nonce = blob[len(_FORMAT):len(_FORMAT) + 12]
        try:
            plain = self._aead.decrypt(nonce, blob[len(_FORMAT) + 12:], self._aad)
        except InvalidTag as exc:
            raise SecretError(f"{self.path} cannot be opened: wrong master key or the file was altered") from exc
        document: dict[str, Any] = json.loads(plain)
        return document

    def write(self, document: dict[str, Any]) -> None:
        """Encrypt and atomically replace the file."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, json.dumps(document, sort_keys=True).encode(), self._aad)
        write_private(self.path, _FORMAT + nonce + sealed)
