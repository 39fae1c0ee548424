"""The model bundle (``.cwm``): one file carrying a model, its card, its dynamic-range variant and a signature.

Layout::

    [ tar archive (POSIX ustar, uncompressed) ][ trailer: 112 bytes ]

The tar holds exactly these regular files, nothing else (no folders, links or devices):

    manifest.json             format, the model's sha256, where it came from, and {name: sha256, size} of each file below
    model.tflite              the full-integer int8 model
    model.card.json           its model card
    model.dynamic.tflite      optional: the dynamic-range variant the device may run instead (edge.model_choice) ...
    model.dynamic.card.json   ... and its card (both or neither)

The trailer::

    magic       8 bytes   b"CWMSIG1\\n"
    digest     32 bytes   sha256 of the tar: every byte before the trailer
    key id      8 bytes   the signing key's id (edge.modelstore.keys); all zero for an unsigned bundle
    signature  64 bytes   Ed25519 over b"conveyor-watch-bundle/1\\n" + digest; all zero for an unsigned bundle

Why a trailer rather than a signature member inside the tar: a tar has bytes that no member's content
covers (header fields such as mtime, block padding, the end-of-archive blocks), so a signed manifest
alone would let a changed byte there pass. The digest covers every byte of the archive and every byte
of the trailer is checked exactly: any single changed byte anywhere in the file is refused. The trailer
is the only format code written here (a fixed 112-byte struct); the archive is the standard library's
tarfile, and ``tar tf bundle.cwm`` lists it (tar stops at its end-of-archive blocks).

Verification comes before parsing: tarfile only ever reads bytes whose digest (and, for a signed
bundle, whose signature) has been checked. Nothing is extracted by name: the expected files are read
into memory (at most :data:`MAX_BUNDLE_BYTES` in all) and the store writes them under names of its own,
so a crafted member name cannot reach the file system.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ModelError
from edge.modelcard import ModelCard, load_card
from edge.modelstore.errors import BundleRefused
from edge.modelstore.keys import KEY_ID_BYTES, Signer, Trust

FORMAT = "conveyor-watch-bundle/1"
SUFFIX = ".cwm"
MAGIC = b"CWMSIG1\n"
SIGNED_PREFIX = b"conveyor-watch-bundle/1\n"
TRAILER = struct.Struct(f">8s32s{KEY_ID_BYTES}s64s")
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # the bundled model is 0.8 MB; a Pi must not be made to read gigabytes
MAX_MANIFEST_BYTES = 64 * 1024
MAX_CARD_BYTES = 1024 * 1024

MANIFEST = "manifest.json"
MODEL, CARD = "model.tflite", "model.card.json"
VARIANT, VARIANT_CARD = "model.dynamic.tflite", "model.dynamic.card.json"
MEMBERS = (MANIFEST, MODEL, CARD, VARIANT, VARIANT_CARD)
ZERO_KEY, ZERO_SIGNATURE = bytes(KEY_ID_BYTES), bytes(64)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class BundleContent:
    """The files a bundle carries, as bytes."""

    model: bytes
    card: bytes
    variant: bytes | None = None
    variant_card: bytes | None = None

    def files(self) -> dict[str, bytes]:
        """Name -> bytes, in the bundle's order (the variant pair only when present)."""
        out = {MODEL: self.model, CARD: self.card}
        if self.variant is not None and self.variant_card is not None:
            out |= {VARIANT: self.variant, VARIANT_CARD: self.variant_card}
        return out


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that passed every check; only these are ever stored or run."""

    content: BundleContent
    manifest: dict[str, Any]
    model_sha256: str  # the int8 model's sha256: the id events and the registry use
    bundle_sha256: str  # sha256 of the whole .cwm file
    key_id: str | None  # None: unsigned (accepted only with model.allow_unsigned)
    card: ModelCard
    variant_card: ModelCard | None

    @property
    def source(self) -> str:
        return str(self.manifest.get("source", ""))


# --- writing (conveyor-convert bundle) --------------------------------------------------------------

def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), 0o644, 0, 0, 0, "", ""
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_bundle(content: BundleContent, signer: Signer | None, *, source: str, created: str, tool: str) -> bytes:
    """The bytes of a bundle holding ``content``, signed by ``signer`` (None: unsigned, for development)."""
    files = content.files()
    manifest = {"format": FORMAT, "model_sha256": sha256_hex(content.model), "source": source, "created": created, "tool": tool,
                "files": {name: {"sha256": sha256_hex(data), "size": len(data)} for name, data in files.items()}}
    archive = _tar({MANIFEST: (json.dumps(manifest, indent=2) + "\n").encode(), **files})
    digest = hashlib.sha256(archive).digest()
    if signer is None:
        key_id, signature = ZERO_KEY, ZERO_SIGNATURE
    else:
        key_id, signature = bytes.fromhex(signer.key_id), signer.sign(SIGNED_PREFIX + digest)
    bundle = archive + TRAILER.pack(MAGIC, digest, key_id, signature)
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise BundleRefused(f"the bundle would be {len(bundle)} bytes; at most {MAX_BUNDLE_BYTES} are accepted by the device")
    return bundle


# --- verifying (the device) -----------------------------------------------------------------------

def _authenticate(data: bytes, trust: Trust, where: str) -> tuple[bytes, str | None]:
    """The archive bytes and the signing key's id (None when unsigned), once digest and signature check out."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleRefused(f"{where}: {len(data)} bytes is larger than the {MAX_BUNDLE_BYTES} a bundle may have")
    if len(data) < TRAILER.size + 2 * tarfile.BLOCKSIZE:
        raise BundleRefused(f"{where}: too short to be a model bundle ({len(data)} bytes)")
    archive, trailer = data[:-TRAILER.size], data[-TRAILER.size:]
    magic, digest, key_id, signature = TRAILER.unpack(trailer)
    if magic != MAGIC:
        raise BundleRefused(f"{where}: not a conveyor-watch model bundle (no bundle trailer; make one with conveyor-convert bundle)")
    if hashlib.sha256(archive).digest() != digest:
        raise BundleRefused(f"{where}: damaged or altered: its content does not match its digest")
    if key_id == ZERO_KEY:
        if signature != ZERO_SIGNATURE:
            raise BundleRefused(f"{where}: damaged: an unsigned bundle with signature bytes")
        if not trust.allow_unsigned:
            raise BundleRefused(f"{where}: unsigned; only bundles signed by a key in model.trusted_keys are accepted "
                                "(model.allow_unsigned: true is for development)")
        return archive, None
    key = trust.by_id(key_id.hex())
    if key is None:
        raise BundleRefused(f"{where}: signed by an unknown key {key_id.hex()}; {trust.describe()}")
    if not key.verifies(signature, SIGNED_PREFIX + digest):
        raise BundleRefused(f"{where}: the signature does not verify with key {key.key_id}: altered after signing")
    return archive, key.key_id


def _members(archive: bytes, where: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for member in tar:
                name = member.name if len(member.name) <= 80 else member.name[:77] + "..."
                if not member.isreg():
                    raise BundleRefused(f"{where}: member {name!r} is not a regular file")
                if member.name not in MEMBERS:
                    raise BundleRefused(f"{where}: unexpected member {name!r}; a bundle holds only {', '.join(MEMBERS)}")
                if member.name in out:
                    raise BundleRefused(f"{where}: member {name!r} appears twice")
                handle = tar.extractfile(member)
                if handle is None:
                    raise BundleRefused(f"{where}: member {name!r} cannot be read")
                out[member.name] = handle.read()
    except tarfile.TarError as exc:
        raise BundleRefused(f"{where}: not a readable archive ({exc})") from None
    return out


def _manifest(members: dict[str, bytes], where: str) -> dict[str, Any]:
    raw = members.get(MANIFEST)
    if raw is None or len(raw) > MAX_MANIFEST_BYTES:
        raise BundleRefused(f"{where}: {MANIFEST} is missing or too large")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BundleRefused(f"{where}: {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BundleRefused(f"{where}: {MANIFEST}: expected \"format\": \"{FORMAT}\" and a \"files\" object")
    listed, present = set(manifest["files"]), set(members) - {MANIFEST}
    if listed != present:
        raise BundleRefused(f"{where}: {MANIFEST} lists {sorted(listed)} but the bundle holds {sorted(present)}")
    if present not in ({MODEL, CARD}, {MODEL, CARD, VARIANT, VARIANT_CARD}):
        raise BundleRefused(f"{where}: expected {MODEL} and {CARD} (and optionally both of {VARIANT}, {VARIANT_CARD}); got {sorted(present)}")
    for name in sorted(present):
        entry, data = manifest["files"][name], members[name]
        if not isinstance(entry, dict) or entry.get("sha256") != sha256_hex(data) or entry.get("size") != len(data):
            raise BundleRefused(f"{where}: {name} does not match its sha256 and size in {MANIFEST}")
    if manifest.get("model_sha256") != sha256_hex(members[MODEL]):
        raise BundleRefused(f"{where}: {MANIFEST} names model sha256 {str(manifest.get('model_sha256'))[:16]}, not {MODEL}'s")
    return manifest


def card_from_bytes(data: bytes, name: str, where: str) -> ModelCard:
    """Load a card with :func:`edge.modelcard.load_card` (the one card reader), naming the bundle in errors."""
    if len(data) > MAX_CARD_BYTES:
        raise BundleRefused(f"{where}: {name} is larger than {MAX_CARD_BYTES} bytes")
    with tempfile.TemporaryDirectory(prefix="conveyor-card-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            return load_card(path)
        except ModelError as exc:
            raise BundleRefused(f"{where}: {str(exc).replace(str(path), name)}") from None


def check_cards(content: BundleContent, where: str) -> tuple[ModelCard, ModelCard | None]:
    """Each card belongs to its model (sha256) and the variant to the int8 model; the cards, loaded."""
    model_sha = sha256_hex(content.model)
    card = card_from_bytes(content.card, CARD, where)
    if card.tflite_sha256 != model_sha:
        raise BundleRefused(f"{where}: {CARD} does not match {MODEL} (the card names sha256 {card.tflite_sha256[:16]}…, "
                            f"the model is {model_sha[:16]}…)")
    if content.variant is None or content.variant_card is None:
        return card, None
    variant_card = card_from_bytes(content.variant_card, VARIANT_CARD, where)
    if variant_card.tflite_sha256 != sha256_hex(content.variant):
        raise BundleRefused(f"{where}: {VARIANT_CARD} does not match {VARIANT}")
    if variant_card.metrics.get("int8_model_sha256") != model_sha:
        raise BundleRefused(f"{where}: {VARIANT} was built for another int8 model, not this bundle's {MODEL}")
    if (variant_card.input, variant_card.output) != (card.input, card.output):
        raise BundleRefused(f"{where}: {VARIANT}'s input/output differ from {MODEL}'s")
    return card, variant_card


def verify_bundle(data: bytes, trust: Trust, where: str) -> VerifiedBundle:
    """Check a bundle's bytes completely: trailer, digest, signature (or the unsigned policy), members,
    manifest and cards. :class:`BundleRefused` with a one-line reason naming ``where`` otherwise."""
    archive, key_id = _authenticate(data, trust, where)
    members = _members(archive, where)
    manifest = _manifest(members, where)
    content = BundleContent(members[MODEL], members[CARD], members.get(VARIANT), members.get(VARIANT_CARD))
    card, variant_card = check_cards(content, where)
    return VerifiedBundle(content, manifest, sha256_hex(content.model), sha256_hex(data), key_id, card, variant_card)


def read_bundle_file(path: Path) -> bytes:
    """The bytes of a bundle file, refusing oversized ones before reading them."""
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise BundleRefused(f"{path}: {size} bytes is larger than the {MAX_BUNDLE_BYTES} a bundle may have")
        with path.open("rb") as handle:
            return handle.read(MAX_BUNDLE_BYTES + 1)
    except FileNotFoundError:
        raise BundleRefused(f"{path}: file not found") from None
    except IsADirectoryError:
        raise BundleRefused(f"{path}: is a folder; expected a .cwm bundle") from None
    except OSError as exc:
        raise BundleRefused(f"{path}: cannot read ({exc.strerror})") from None
