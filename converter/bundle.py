"""``conveyor-convert keygen`` and ``conveyor-convert bundle``: sign models for the devices that trust the plant's key.

    keygen --out DIR [--name NAME] [--passphrase-file F]
        DIR/NAME.key (private, 0600: keep it on the workstation, never on a device) and DIR/NAME.pub
        (public: list it in each device's model.trusted_keys).
    bundle --model M.tflite --key DIR/NAME.key --out B.cwm [--passphrase-file F]
    bundle --model M.tflite --unsigned --out B.cwm      (development: devices refuse it unless model.allow_unsigned)
        One file with M.tflite, its card and, when present beside it, the dynamic-range variant
        (M.dynamic.tflite) and its card, signed. Install it with ``edge-daemon model install B.cwm``.

Needs no TensorFlow: the format and the checks are the device's own (edge.modelstore.bundle), so a
bundle this writes is one the device accepts, and one the device would refuse is refused here first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import stat
import sys
from pathlib import Path
from typing import Any

from converter import __version__
from converter.errors import ConverterError

COMMANDS = ("keygen", "bundle")
DEFAULT_KEY_NAME = "model-signing"


def add_parsers(sub: Any) -> None:
    """Add ``keygen`` and ``bundle`` to the converter's sub-commands."""
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing model bundles")
    p.add_argument("--out", type=Path, required=True, help="folder for NAME.key (private, 0600) and NAME.pub (public)")
    p.add_argument("--name", default=DEFAULT_KEY_NAME, help=f"file name stem (default {DEFAULT_KEY_NAME})")
    p.add_argument("--passphrase-file", type=Path, help="encrypt the private key with the passphrase in this file")
    p = sub.add_parser("bundle", help="one signed .cwm file with a model, its card and its dynamic-range variant")
    p.add_argument("--model", type=Path, required=True, help="the int8 .tflite (its .card.json beside it)")
    signing = p.add_mutually_exclusive_group(required=True)
    signing.add_argument("--key", type=Path, help="the private key (keygen's NAME.key)")
    signing.add_argument("--unsigned", action="store_true", help="no signature (development: devices refuse it by default)")
    p.add_argument("--out", type=Path, required=True, help="the bundle to write (.cwm)")
    p.add_argument("--passphrase-file", type=Path, help="the private key's passphrase, if it is encrypted")


def _passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        value = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConverterError(f"--passphrase-file {path}: cannot read ({exc.strerror})") from None
    if not value:
        raise ConverterError(f"--passphrase-file {path}: empty")
    return value


def keygen(out: Path, name: str, passphrase_file: Path | None) -> dict[str, Any]:
    from edge.modelstore.keys import generate_key_pair

    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ConverterError(f"--name {name!r}: a plain file name stem is expected")
    private, public, key_id = generate_key_pair(out, name, _passphrase(passphrase_file))
    return {"private_key": str(private), "public_key": str(public), "key_id": key_id,
            "next": f"list {public} in each device's model.trusted_keys; keep {private} off the devices"}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConverterError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConverterError(f"{path}: cannot read the {what} ({exc.strerror})") from None


def make_bundle(model: Path, key: Path | None, out: Path, passphrase_file: Path | None) -> dict[str, Any]:
    from edge.model_choice import variant_path
    from edge.modelcard import card_path_for
    from edge.modelstore.bundle import SUFFIX, BundleContent, build_bundle, check_cards, verify_bundle
    from edge.modelstore.keys import Trust, load_private_key

    if model.suffix != ".tflite":
        raise ConverterError(f"--model {model}: expected the int8 .tflite file")
    if out.suffix != SUFFIX:
        raise ConverterError(f"--out {out}: a bundle's name ends in {SUFFIX}")
    signer = None
    if key is not None:
        signer = load_private_key(key, _passphrase(passphrase_file))
        if key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"conveyor-convert: warning: {key} is readable by others; chmod 600 it", file=sys.stderr)
    variant = variant_path(model)
    has_variant = variant.is_file() and card_path_for(variant).is_file()
    content = BundleContent(_read(model, "model"), _read(card_path_for(model), "model card"),
                            _read(variant, "dynamic-range variant") if has_variant else None,
                            _read(card_path_for(variant), "variant's card") if has_variant else None)
    check_cards(content, str(model.parent))  # refuses what the device would refuse, naming the file
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = build_bundle(content, signer, source=model.name, created=created, tool=f"conveyor-convert {__version__}")
    trust = Trust((), allow_unsigned=True) if signer is None else Trust((_public_of(signer),))
    bundle = verify_bundle(data, trust, str(out))  # what the device will do, before anyone copies it there
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return {"bundle": str(out), "bytes": len(data), "model_sha256": bundle.model_sha256, "bundle_sha256": bundle.bundle_sha256,
            "key_id": bundle.key_id, "files": sorted(content.files()), "dynamic_variant": has_variant}


def _public_of(signer: Any) -> Any:
    from edge.modelstore.keys import PublicKey

    return PublicKey(signer.key_id, "(the signing key)", signer.key.public_key())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``keygen`` or ``bundle``; the result to print. Edge errors (a bad key, a card that does not match) pass through."""
    if args.command == "keygen":
        return keygen(args.out, args.name, args.passphrase_file)
    return make_bundle(args.model, args.key, args.out, args.passphrase_file)
