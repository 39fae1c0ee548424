"""Signed model bundles (.cwm): conveyor-convert keygen/bundle write them, the device's verifier accepts exactly
those, and refuses any changed byte, an unknown or missing signer, a card that does not match, and crafted archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import expected_runtime
from helpers.models import BUNDLED_MODEL, add_variant, model_copy, sha_of

from converter.cli import main as convert
from edge.inference import Classifier, load_runtime
from edge.modelstore.bundle import (
    MAGIC,
    MAX_BUNDLE_BYTES,
    SIGNED_PREFIX,
    TRAILER,
    BundleContent,
    build_bundle,
    read_bundle_file,
    verify_bundle,
)
from edge.modelstore.errors import BundleRefused
from edge.modelstore.keys import Trust, generate_key_pair, load_private_key, load_public_key


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    plant_key, plant_pub, _ = generate_key_pair(folder, "plant")
    other_key, other_pub, _ = generate_key_pair(folder, "other")
    return {"key": plant_key, "pub": plant_pub, "other_key": other_key, "other_pub": other_pub}


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    model = model_copy(folder / "model")
    out = folder / "b.cwm"
    assert convert(["bundle", "--model", str(model), "--key", str(keys["key"]), "--out", str(out)]) == 0
    return out


def trust(keys: dict[str, Path], *names: str, allow_unsigned: bool = False) -> Trust:
    return Trust.from_files([str(keys[n]) for n in names or ("pub",)], allow_unsigned)


def resign(archive: bytes, key: Path) -> bytes:
    """A bundle trailer over arbitrary archive bytes, signed with ``key``: what an attacker holding a trusted key could make."""
    signer = load_private_key(key)
    digest = hashlib.sha256(archive).digest()
    return archive + TRAILER.pack(MAGIC, digest, bytes.fromhex(signer.key_id), signer.sign(SIGNED_PREFIX + digest))


def test_keygen_makes_a_private_key_only_its_owner_can_read_and_never_overwrites(tmp_path: Path,
                                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """NAME.key is 0600 whatever the umask, NAME.pub 0644; a second keygen to the same names is refused in one line."""
    old = os.umask(0)
    try:
        assert convert(["keygen", "--out", str(tmp_path / "k"), "--name", "plant"]) == 0
    finally:
        os.umask(old)
    printed = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE((tmp_path / "k" / "plant.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k" / "plant.pub").stat().st_mode) == 0o644
    assert load_public_key(tmp_path / "k" / "plant.pub").key_id == printed["key_id"] == load_private_key(tmp_path / "k" / "plant.key").key_id
    assert convert(["keygen", "--out", str(tmp_path / "k"), "--name", "plant"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plant.key: already exists" in err[0]


def test_an_encrypted_private_key_needs_its_passphrase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """keygen --passphrase-file encrypts the key; bundle without (or with a wrong) passphrase fails in one line."""
    (tmp_path / "pass").write_text("correct horse\n")
    (tmp_path / "wrong").write_text("battery staple\n")
    assert convert(["keygen", "--out", str(tmp_path), "--name", "enc", "--passphrase-file", str(tmp_path / "pass")]) == 0
    assert b"ENCRYPTED" in (tmp_path / "enc.key").read_bytes()
    model = model_copy(tmp_path / "m")
    base = ["bundle", "--model", str(model), "--key", str(tmp_path / "enc.key"), "--out", str(tmp_path / "b.cwm")]
    capsys.readouterr()
    assert convert(base) == 2 and "encrypted; give its passphrase" in capsys.readouterr().err
    assert convert([*base, "--passphrase-file", str(tmp_path / "wrong")]) == 2 and "wrong passphrase" in capsys.readouterr().err
    assert convert([*base, "--passphrase-file", str(tmp_path / "pass")]) == 0 and (tmp_path / "b.cwm").is_file()


def test_a_signed_bundle_holds_the_model_and_its_card_and_verifies(signed: Path, keys: dict[str, Path]) -> None:
    """tar lists exactly manifest, model and card; the verifier returns the same bytes, the model's sha and the signer."""
    names = subprocess.run(["tar", "tf", str(signed)], capture_output=True, text=True, check=True).stdout.split()
    assert names == ["manifest.json", "model.tflite", "model.card.json"]
    bundle = verify_bundle(signed.read_bytes(), trust(keys), "b.cwm")
    assert bundle.content.model == BUNDLED_MODEL.read_bytes() and bundle.model_sha256 == sha_of(BUNDLED_MODEL)
    assert bundle.key_id == load_public_key(keys["pub"]).key_id and bundle.variant_card is None
    assert bundle.manifest["files"]["model.tflite"]["sha256"] == sha_of(BUNDLED_MODEL) and bundle.source == "conveyor_int8.tflite"


def test_the_dynamic_range_variant_beside_the_model_goes_into_the_bundle(tmp_path: Path, keys: dict[str, Path]) -> None:
    """A variant (and its card) beside the model is bundled and checked to belong to it; one built for another model is refused."""
    model = model_copy(tmp_path)
    add_variant(model)
    out = tmp_path / "v.cwm"
    assert convert(["bundle", "--model", str(model), "--key", str(keys["key"]), "--out", str(out)]) == 0
    bundle = verify_bundle(out.read_bytes(), trust(keys), "v.cwm")
    assert bundle.variant_card is not None and bundle.variant_card.metrics["int8_model_sha256"] == bundle.model_sha256
    add_variant(model, belongs_to="0" * 64)
    with pytest.raises(BundleRefused, match="model.dynamic.tflite was built for another int8 model"):
        from converter.bundle import make_bundle

        make_bundle(model, keys["key"], tmp_path / "w.cwm", None)


def test_any_changed_byte_anywhere_is_refused(signed: Path, keys: dict[str, Path]) -> None:
    """Every byte of the trailer, of each tar header block, of the padding and end-of-archive blocks, and bytes spread
    over the content: flipping any one is refused with one line naming the bundle."""
    data = signed.read_bytes()
    tar_end = len(data) - TRAILER.size
    rng = np.random.default_rng(11)
    positions = set(range(tar_end, len(data)))  # the whole trailer
    with tarfile.open(fileobj=io.BytesIO(data[:tar_end])) as archive:
        for member in archive.getmembers():
            positions.update(range(member.offset, member.offset + tarfile.BLOCKSIZE))  # each header, byte by byte
            end = member.offset_data + member.size
            positions.update(range(end, min(end + 64, tar_end)))  # block padding after the content
            positions.update(int(p) for p in rng.integers(member.offset_data, max(end, member.offset_data + 1), 50))
    positions.update(range(tar_end - 2 * tarfile.BLOCKSIZE, tar_end))  # the end-of-archive blocks
    shown = trust(keys)
    for position in sorted(positions):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        with pytest.raises(BundleRefused) as refused:
            verify_bundle(bytes(tampered), shown, "b.cwm")
        assert "\n" not in str(refused.value) and str(refused.value).startswith("b.cwm: "), (position, refused.value)
    assert len(positions) > 2000


def test_tar_itself_would_not_notice_a_changed_padding_byte(signed: Path) -> None:
    """Why the trailer digest covers the whole archive: the tar reader accepts changed block padding and end blocks silently."""
    data = bytearray(signed.read_bytes()[:-TRAILER.size])
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as archive:
        first = archive.getmembers()[0]
    data[first.offset_data + first.size] ^= 0x55  # the padding after manifest.json's content
    data[-1] ^= 0x55  # the last end-of-archive block
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as archive:
        assert archive.getnames() == ["manifest.json", "model.tflite", "model.card.json"]


def test_a_bundle_signed_by_an_unknown_key_is_refused(signed: Path, keys: dict[str, Path]) -> None:
    """Signed by the plant's key, checked by a device that trusts only another key: refused, naming both key ids."""
    with pytest.raises(BundleRefused) as refused:
        verify_bundle(signed.read_bytes(), trust(keys, "other_pub"), "b.cwm")
    message = str(refused.value)
    assert f"signed by an unknown key {load_public_key(keys['pub']).key_id}" in message
    assert load_public_key(keys["other_pub"]).key_id in message


def test_an_unsigned_bundle_is_refused_unless_the_device_allows_it(tmp_path: Path, keys: dict[str, Path]) -> None:
    """bundle --unsigned: refused by default (saying what the option is for), accepted with allow_unsigned, key_id None."""
    out = tmp_path / "u.cwm"
    assert convert(["bundle", "--model", str(model_copy(tmp_path)), "--unsigned", "--out", str(out)]) == 0
    with pytest.raises(BundleRefused, match="unsigned; only bundles signed by a key in model.trusted_keys"):
        verify_bundle(out.read_bytes(), trust(keys), "u.cwm")
    assert verify_bundle(out.read_bytes(), trust(keys, allow_unsigned=True), "u.cwm").key_id is None


def test_a_bundle_whose_card_does_not_match_its_model_is_refused_even_when_validly_signed(tmp_path: Path, keys: dict[str, Path],
                                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The card of another model with this model, signed with the trusted key: the device refuses it; so does bundle."""
    model, other = model_copy(tmp_path / "a"), model_copy(tmp_path / "b", tag="5")
    content = BundleContent(model.read_bytes(), other.with_suffix(".card.json").read_bytes())
    data = build_bundle(content, load_private_key(keys["key"]), source="x.tflite", created="2026-01-01T00:00:00Z", tool="test")
    with pytest.raises(BundleRefused, match=r"model.card.json does not match model.tflite \(the card names sha256 "):
        verify_bundle(data, trust(keys), "x.cwm")
    model.with_suffix(".card.json").write_bytes(other.with_suffix(".card.json").read_bytes())
    assert convert(["bundle", "--model", str(model), "--key", str(keys["key"]), "--out", str(tmp_path / "x.cwm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.card.json does not match model.tflite" in err[0] and not (tmp_path / "x.cwm").exists()


def _tar(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


@pytest.mark.parametrize(("name", "kind", "expected"), [
    ("../../etc/evil", tarfile.REGTYPE, "unexpected member '../../etc/evil'"),
    ("/tmp/evil", tarfile.REGTYPE, "unexpected member '/tmp/evil'"),
    ("model.tflite", tarfile.SYMTYPE, "member 'model.tflite' is not a regular file"),
    ("model.tflite", tarfile.DIRTYPE, "member 'model.tflite' is not a regular file"),
    ("manifest.json", tarfile.REGTYPE, "member 'manifest.json' appears twice"),
])
def test_crafted_archives_are_refused_even_under_a_trusted_signature(tmp_path: Path, keys: dict[str, Path], name: str, kind: bytes,
                                                                     expected: str) -> None:
    """Path traversal, absolute names, links, folders, duplicates: refused by name, and nothing is ever extracted by name."""
    good = verify_bundle(resign(read_bundle_file_tar(tmp_path, keys), keys["key"]), trust(keys), "ok.cwm")
    entries = [(tarfile.TarInfo("manifest.json"), json.dumps(good.manifest).encode()),
               (tarfile.TarInfo("model.tflite"), good.content.model), (tarfile.TarInfo("model.card.json"), good.content.card)]
    crafted = tarfile.TarInfo(name)
    crafted.type = kind
    crafted.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    data = resign(_tar([*entries, (crafted, b"x")]), keys["key"])
    with pytest.raises(BundleRefused, match=expected.replace("(", r"\(").replace(")", r"\)")):
        verify_bundle(data, trust(keys), "crafted.cwm")


def read_bundle_file_tar(tmp_path: Path, keys: dict[str, Path]) -> bytes:
    out = tmp_path / "ok.cwm"
    assert convert(["bundle", "--model", str(model_copy(tmp_path / "m")), "--key", str(keys["key"]), "--out", str(out)]) == 0
    return out.read_bytes()[:-TRAILER.size]


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A file larger than the limit (sparse here) is refused from its size alone."""
    big = tmp_path / "big.cwm"
    with big.open("wb") as handle:
        handle.truncate(MAX_BUNDLE_BYTES + 1)
    with pytest.raises(BundleRefused, match="larger than the"):
        read_bundle_file(big)


def test_the_second_test_model_is_the_same_network_under_another_sha(tmp_path: Path) -> None:
    """The tagged copy tests use as a 'new' model loads in the real runtime and gives the bundled model's outputs."""
    runtime = load_runtime(expected_runtime())
    original, copy = model_copy(tmp_path / "a"), model_copy(tmp_path / "b", tag="7")
    assert sha_of(original) != sha_of(copy)
    crops = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    a = Classifier.from_files(original, runtime, batch=4).classify(crops)
    b = Classifier.from_files(copy, runtime, batch=4).classify(crops)
    assert np.array_equal(a.alert, b.alert) and (a.unknown is None) == (b.unknown is None)
    assert a.unknown is None or b.unknown is None or np.array_equal(a.unknown, b.unknown)


def test_the_reviewers_path_keygen_bundle_from_the_command_line(tmp_path: Path) -> None:
    """conveyor-convert keygen and bundle as installed commands, on the bundled model: a bundle the device key verifies."""
    run = [sys.executable, "-m", "converter"]
    subprocess.run([*run, "keygen", "--out", str(tmp_path / "keys")], check=True, capture_output=True)
    made = subprocess.run([*run, "bundle", "--model", str(BUNDLED_MODEL), "--key", str(tmp_path / "keys" / "model-signing.key"),
                           "--out", str(tmp_path / "model.cwm")], check=True, capture_output=True, text=True)
    result = json.loads(made.stdout)
    # The bundled model ships with its dynamic-range variant (the device picks the faster form): the bundle carries both.
    assert result["model_sha256"] == sha_of(BUNDLED_MODEL) and result["dynamic_variant"] is True
    assert result["files"] == ["model.card.json", "model.dynamic.card.json", "model.dynamic.tflite", "model.tflite"]
    shown = Trust.from_files([str(tmp_path / "keys" / "model-signing.pub")])
    assert verify_bundle((tmp_path / "model.cwm").read_bytes(), shown, "model.cwm").key_id == result["key_id"]
