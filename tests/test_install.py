"""The offline Raspberry Pi bundle and its installer, as far as this x86-64 machine takes them.

The bundle is built for real (scripts/pi-bundle.sh: PyPI through pip's cache) and checked file by
file; install.sh runs from it as root inside a user namespace whose root is `nobody` outside, so
it gets past its root check but could not change this machine. Installing, upgrading, the
automatic rollback, --rollback, --uninstall and --purge, with and without systemd, run in an arm64
Bookworm root under qemu: `sudo make pi-check` (about 10 minutes), kept out of `make test`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from helpers.files import readable_copy, readable_tmpdir
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "systemd" / "install.sh"
PINS = REPO / "systemd" / "bundle-pins.txt"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
NAME = f"conveyor-watch-{VERSION}-pi-aarch64"
# What pip on 64-bit Raspberry Pi OS Bookworm (CPython 3.11, glibc 2.36, aarch64) accepts.
PI_PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + ["manylinux2014_aarch64"]
PI_TAGS = set(cpython_tags((3, 11), ["cp311", "abi3", "none"], PI_PLATFORMS)) | set(compatible_tags((3, 11), "cp311", PI_PLATFORMS))


def as_namespace_root() -> list[str]:
    """uid 0 inside a user namespace, `nobody` outside: install.sh passes its root check but cannot write here."""
    prefix = ["unshare", "--user", "--map-root-user"]
    if os.getuid() == 0:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *prefix]
    return prefix


@pytest.fixture(scope="module")
def bundle() -> Iterator[Path]:
    """make pi-bundle's tar, built with this environment's pip into a temporary folder."""
    out = readable_tmpdir()
    env = {**os.environ, "PI_BUNDLE_PYTHON": sys.executable}
    result = subprocess.run([str(REPO / "scripts" / "pi-bundle.sh"), "--out", str(out)], capture_output=True, text=True,
                            timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    tar = Path(result.stdout.strip().splitlines()[-1])
    assert tar == out / f"{NAME}.tar"
    yield tar
    shutil.rmtree(out)


@pytest.fixture
def unpacked(bundle: Path) -> Iterator[Path]:
    """The bundle unpacked where `nobody` can read it (as it would be in a Pi's home folder)."""
    where = readable_tmpdir()
    with tarfile.open(bundle) as tar:
        tar.extractall(where, filter="tar")
    yield where / NAME
    shutil.rmtree(where)


def run_install(directory: Path, *args: str, setarch: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(setarch or []), *as_namespace_root(), "bash", str(directory / "install.sh"), *args],
                          capture_output=True, text=True, timeout=120, cwd="/")


@pytest.mark.slow
def test_the_bundle_is_one_tar_with_install_sh_at_its_top(bundle: Path) -> None:
    """One folder named for version and platform; install.sh (executable), the unit, pins, manifest, wheels."""
    with tarfile.open(bundle) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {name.split("/")[0] for name in members} == {NAME}
    top = {name.split("/", 1)[1] for name in members if name.count("/") == 1}
    assert top == {"install.sh", "conveyor-watch.service", "constraints.txt", "BUNDLE", "INSTALL.txt", "SHA256SUMS", "wheels"}
    assert members[f"{NAME}/install.sh"].mode & 0o111 and members[f"{NAME}/install.sh"].uid == 0
    assert tar_text(bundle, "install.sh") == INSTALL.read_text()
    assert tar_text(bundle, "conveyor-watch.service") == (REPO / "systemd" / "conveyor-watch.service").read_text()
    info = dict(line.split("=", 1) for line in tar_text(bundle, "BUNDLE").splitlines())
    assert info["version"] == VERSION and info["platform"] == "aarch64" and info["python"] == "cp311"


def tar_text(bundle: Path, name: str) -> str:
    with tarfile.open(bundle) as tar:
        handle = tar.extractfile(f"{NAME}/{name}")
        assert handle is not None
        return handle.read().decode()


@pytest.mark.slow
def test_every_wheel_installs_on_a_pi_and_is_pinned_exactly(unpacked: Path) -> None:
    """Each wheel carries a tag pip accepts on CPython 3.11 aarch64 Bookworm; wheels and pins match one to one."""
    wheels = sorted((unpacked / "wheels").glob("*.whl"))
    found = {}
    for wheel in wheels:
        name, version, _, tags = parse_wheel_filename(wheel.name)
        assert tags & PI_TAGS, f"{wheel.name} does not install on CPython 3.11 aarch64"
        found[canonicalize_name(name)] = str(version)
    pins = dict(line.split("==") for line in PINS.read_text().splitlines() if line and not line.startswith("#"))
    assert found.pop("conveyor-watch") == VERSION
    assert found == {canonicalize_name(k): v for k, v in pins.items()}
    assert (unpacked / "constraints.txt").read_text() == PINS.read_text()
    assert {"ai-edge-litert", "tflite-runtime", "numpy", "opencv-python-headless", "pip"} <= found.keys()
    assert found["numpy"].startswith("1."), "one numpy 1.x serves tflite-runtime 2.14 and apt's Picamera2"


@pytest.mark.slow
def test_the_manifest_covers_every_file(unpacked: Path) -> None:
    """SHA256SUMS lists every other file in the bundle and sha256sum --check --strict accepts it."""
    listed = {line.split("  ", 1)[1] for line in (unpacked / "SHA256SUMS").read_text().splitlines()}
    present = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert listed == present
    assert subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=unpacked, timeout=60).returncode == 0


@pytest.mark.slow
def test_install_refuses_a_machine_that_is_not_aarch64_in_one_line(unpacked: Path) -> None:
    """On this x86-64 machine: exit 2, one line naming the bundle's platform and this one, before any change."""
    result = run_install(unpacked, "--offline", "--yes", "--site", "a", "--line", "b", "--broker", "h")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == ("install.sh: this bundle is for aarch64 but this machine is x86_64 "
                                     "(64-bit Raspberry Pi OS Bookworm is aarch64)")


@pytest.mark.slow
def test_install_refuses_32_bit_systems_in_one_line(unpacked: Path) -> None:
    """A 32-bit system (here the i686 personality; on a Pi, 32-bit Raspberry Pi OS) is told to use 64-bit Bookworm."""
    result = run_install(unpacked, "--offline", setarch=["setarch", "linux32"])
    assert result.returncode == 2
    assert result.stderr.strip() == ("install.sh: this is a 32-bit system (i686): conveyor-watch needs 64-bit Raspberry Pi OS "
                                     "Bookworm (arm64); the TFLite runtimes ship no 32-bit wheels")


@pytest.mark.slow
def test_install_refuses_a_changed_bundle(unpacked: Path) -> None:
    """A wheel changed after the build, or one added to the folder, stops install.sh with the file's name."""
    numpy_wheel = next((unpacked / "wheels").glob("numpy-*.whl"))
    data = bytearray(numpy_wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    numpy_wheel.write_bytes(bytes(data))
    result = run_install(unpacked, "--offline")
    assert result.returncode == 2 and f"the bundle is damaged or was changed: wheels/{numpy_wheel.name}: FAILED" in result.stderr
    numpy_wheel.write_bytes(bytes(data[: len(data) // 2]) + bytes([data[len(data) // 2] ^ 0xFF]) + bytes(data[len(data) // 2 + 1:]))
    shutil.copy(numpy_wheel, unpacked / "wheels" / "numpy-9.9.9-cp311-cp311-manylinux_2_17_aarch64.whl")
    result = run_install(unpacked, "--offline")
    assert result.returncode == 2 and "numpy-9.9.9-cp311-cp311-manylinux_2_17_aarch64.whl is not in SHA256SUMS" in result.stderr


def test_install_outside_a_bundle_says_how_to_get_one() -> None:
    """Run from the checkout's systemd/ folder (no wheels beside it), install.sh points at make pi-bundle."""
    with readable_copy(INSTALL.parent) as systemd:
        result = run_install(systemd, "--offline")
    assert result.returncode == 2, result.stderr
    assert "run install.sh from an unpacked bundle: make pi-bundle" in result.stderr


def test_the_wheel_builds_offline_with_debians_setuptools(tmp_path: Path) -> None:
    """Debian 12's python3-setuptools (66.1) builds the project with no network and no build isolation,
    and the metadata is complete: classifiers, URLs, Requires-Python and the LICENSE file."""
    debian_python = Path("/usr/bin/python3")
    version = subprocess.run([str(debian_python), "-c", "import setuptools, wheel; print(setuptools.__version__)"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, "Debian's python3-setuptools and python3-wheel (scripts/setup-env.sh installs them)"
    source = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path / "out"
    no_network = ["unshare", "--net"] if os.getuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]
    build = subprocess.run([*no_network, str(debian_python), "-c",
                            f"import setuptools.build_meta as b; print(b.build_wheel({str(out)!r}))"],
                           cwd=source, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = out / build.stdout.strip().splitlines()[-1]
    unpacked = subprocess.run([sys.executable, "-m", "zipfile", "-e", str(wheel), str(tmp_path / "whl")], timeout=60)
    assert unpacked.returncode == 0
    dist_info = tmp_path / "whl" / f"conveyor_watch-{VERSION}.dist-info"
    metadata = Parser().parsestr((dist_info / "METADATA").read_text())
    assert metadata["Version"] == VERSION and metadata["Requires-Python"] == ">=3.11"
    assert metadata["License-File"] == "LICENSE" and (dist_info / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    classifiers = metadata.get_all("Classifier") or []
    assert "License :: Other/Proprietary License" in classifiers and "Private :: Do Not Upload" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert {url.split(",")[0] for url in metadata.get_all("Project-URL") or []} >= {"Documentation", "Install"}
    assert tuple(int(part) for part in version.stdout.strip().split(".")[:2]) >= (66, 1)  # 66.1.1 on Debian 12
