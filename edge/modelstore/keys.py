"""Ed25519 signing keys for model bundles, and the device's list of keys it trusts.

Keys are made and used with pyca/cryptography (OpenSSL underneath): no cryptography is written
here. A private key is a PKCS#8 PEM file (``<name>.key``, mode 0600, optionally encrypted with a
passphrase); a public key is a SubjectPublicKeyInfo PEM file (``<name>.pub``). A key's id is the
first 8 bytes of the sha256 of its raw 32-byte public key, in hex: short enough to print, long
enough that two keys of one plant never share it by chance.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ConfigError, ModelError

if TYPE_CHECKING:  # cryptography (~7.5 MB resident) is imported only when a key is loaded, made or used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ID_BYTES = 8
PRIVATE_SUFFIX, PUBLIC_SUFFIX = ".key", ".pub"
MAX_KEY_FILE_BYTES = 16 * 1024


class KeyFileError(ModelError):
    """A key file is missing, unreadable or not an Ed25519 key of the expected kind."""


def key_id_of(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:KEY_ID_BYTES].hex()


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key and the file it came from."""

    key_id: str
    path: str
    key: Ed25519PublicKey

    def verifies(self, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """A private key, ready to sign."""

    key_id: str
    key: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path}: too large for a {what} key file")
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: {what} key file not found") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path}: is a folder; expected a {what} key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the {what} key ({exc.strerror})") from None


def load_public_key(path: Path) -> PublicKey:
    """An Ed25519 public key from a PEM file; :class:`KeyFileError` naming the file otherwise."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_file(path, "public")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = " (this is a private key: give the .pub file)" if b"PRIVATE KEY" in data else ""
        raise KeyFileError(f"{path}: not a PEM public key{hint}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: a {type(key).__name__.lstrip('_')}, expected an Ed25519 public key (conveyor-convert keygen)")
    return PublicKey(key_id_of(key), str(path), key)


def load_private_key(path: Path, passphrase: bytes | None = None) -> Signer:
    """An Ed25519 private key from a PEM file (decrypted with ``passphrase`` when it is encrypted)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(path, "private")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise KeyFileError(f"{path}: the private key is encrypted; give its passphrase (--passphrase-file)") from None
        raise KeyFileError(f"{path}: the private key is not encrypted; leave out the passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        if passphrase is not None and b"ENCRYPTED" in data:
            raise KeyFileError(f"{path}: wrong passphrase for the private key") from None
        hint = " (this is a public key: give the .key file)" if b"PUBLIC KEY" in data else ""
        raise KeyFileError(f"{path}: not a PEM private key{hint}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 private key (conveyor-convert keygen)")
    return Signer(key_id_of(key.public_key()), key)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never overwrite), write, fsync; ``mode`` set explicitly, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def generate_key_pair(directory: Path, name: str, passphrase: bytes | None = None) -> tuple[Path, Path, str]:
    """``directory/<name>.key`` (0600) and ``directory/<name>.pub`` (0644); refuses to overwrite either."""
    private_path, public_path = directory / f"{name}{PRIVATE_SUFFIX}", directory / f"{name}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; keys are never overwritten (choose another --name or folder)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_pem, 0o644)
    return private_path, public_path, key_id_of(key.public_key())


@dataclass(frozen=True)
class Trust:
    """Which bundles this device accepts: those signed by one of ``keys``; unsigned ones only with ``allow_unsigned``."""

    keys: tuple[PublicKey, ...] = ()
    allow_unsigned: bool = False

    @classmethod
    def from_files(cls, paths: Iterable[str], allow_unsigned: bool = False) -> Trust:
        return cls(tuple(load_public_key(Path(p)) for p in paths), allow_unsigned)

    def by_id(self, key_id: str) -> PublicKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    def describe(self) -> str:
        if not self.keys:
            return "no keys are trusted (model.trusted_keys is empty)"
        return "trusted: " + ", ".join(f"{k.key_id} ({Path(k.path).name})" for k in self.keys)


def trust_from_config(trusted_keys: Iterable[str], allow_unsigned: bool) -> Trust:
    """The config's ``model.trusted_keys`` and ``model.allow_unsigned``; a :class:`ConfigError` naming each unusable entry."""
    keys, problems = [], []
    for i, path in enumerate(trusted_keys):
        try:
            keys.append(load_public_key(Path(path)))
        except KeyFileError as exc:
            problems.append(f"model.trusted_keys[{i}]: {exc}")
    if problems:
        raise ConfigError(problems)
    return Trust(tuple(keys), allow_unsigned)
