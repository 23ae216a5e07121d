"""provisioning/build-bundle.sh without the network: the hashed requirements pip installs with
--require-hashes, the SHA256SUMS install-pi.sh checks, and the tarball's own sha256 for the user to
check out of band. pip itself is a stand-in here that hands out tiny prepared wheels."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from moodtunes.store.migrations import MIGRATIONS

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "provisioning" / "build-bundle.sh"
INSTALL = REPO / "provisioning" / "install-pi.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and coreutils")


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (), payload: str = "") -> Path:
    """A minimal pure-Python wheel of one module ``name`` (pip installs it like any other)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n{payload}",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: moodtunes-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(text.encode())}\n"
    files[f"{dist_info}/RECORD"] = record + f"{dist_info}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def default_signals() -> None:
    """In a shell a test starts, the signals at their defaults, as an operator's terminal leaves
    them: a shell started with them ignored (the suite run under nohup, or in the background of a
    script, as a CI runner may start it) can't trap them, and the tests of the installer's traps
    failed there."""
    for number in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


def bash(snippet: str, *sourced: Path, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``snippet`` in bash after sourcing ``sourced`` (which then only define their functions)."""
    script = "".join(f'. "{path}"\n' for path in sourced) + snippet
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False, preexec_fn=default_signals)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hashed_requirements_pin_every_wheel_to_its_sha256(tmp_path):
    wheels, out = tmp_path / "wheels", tmp_path / "requirements"
    out.mkdir()
    own = make_wheel(wheels, "moodtunes", "0.1.0", requires=("pygame_ce",))
    dep = make_wheel(wheels, "pygame_ce", "2.5.2")
    other = make_wheel(wheels, "absl_py", "2.5.1")
    result = bash(f'write_hashed_requirements "{sys.executable}" "{wheels}" "{out}"', BUILD)
    assert result.returncode == 0, result.stderr
    deps = (out / "hashed-dependencies.txt").read_text()
    assert f"absl-py==2.5.1 \\\n    --hash=sha256:{sha256(other)}\n" in deps
    assert f"pygame-ce==2.5.2 \\\n    --hash=sha256:{sha256(dep)}\n" in deps
    assert "moodtunes" not in deps.split("\n", 2)[2]  # only in the header comment
    assert (out / "hashed-moodtunes.txt").read_text().endswith(f"moodtunes==0.1.0 \\\n    --hash=sha256:{sha256(own)}\n")


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [("notes.txt", "not wheels"), ("pygame_ce-2.6.0-py3-none-any.whl", "more than one version of pygame-ce"),
     (None, "expected one moodtunes wheel")],
)
def test_hashed_requirements_refuse_a_muddled_wheel_folder(tmp_path, extra, complaint):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pygame_ce", "2.5.2")
    if extra is None:
        pass
    elif extra.endswith(".whl"):
        make_wheel(wheels, "pygame_ce", "2.6.0")
        make_wheel(wheels, "moodtunes", "0.1.0")
    else:
        make_wheel(wheels, "moodtunes", "0.1.0")
        (wheels / extra).write_text("hello")
    result = bash(f'write_hashed_requirements "{sys.executable}" "{wheels}" "{tmp_path}"', BUILD)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def fake_python(tmp_path: Path) -> Path:
    """PYTHON for build-bundle.sh: `-m pip wheel|download` copy prepared wheels into -w/-d; all else
    is this interpreter."""
    cache = tmp_path / "wheel-cache"
    make_wheel(cache / "own", "moodtunes", "0.1.0", requires=("mtdep",))
    make_wheel(cache / "deps", "mtdep", "1.0")
    script = tmp_path / "python"
    script.write_text(f"""#!/usr/bin/env bash
if [ "$1 $2" = "-m pip" ]; then
  dest=""
  while [ $# -gt 0 ]; do case $1 in -w|-d) dest=$2; shift;; esac; shift; done
  if [ -z "$(ls "$dest")" ]; then cp "{cache}"/own/*.whl "$dest"; else cp "{cache}"/deps/*.whl "$dest"; fi
  exit 0
fi
exec "{sys.executable}" "$@"
""")
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def built_bundle(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp_path = tmp_path_factory.mktemp("bundle")
    out = tmp_path / "dist"
    env = dict(os.environ, PYTHON=str(fake_python(tmp_path)))
    result = subprocess.run(["bash", str(BUILD), str(out)], env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


def test_the_build_writes_and_prints_the_tarballs_sha256(built_bundle):
    out, result = built_bundle
    [tarball] = out.glob("moodtunes-*-rpi-aarch64.tar.gz")
    checksum = out / f"{tarball.name}.sha256"
    assert checksum.read_text() == f"{sha256(tarball)}  {tarball.name}\n"
    assert f"{sha256(tarball)}  {tarball.name}" in result.stdout
    assert subprocess.run(["sha256sum", "-c", checksum.name], cwd=out, capture_output=True, check=False).returncode == 0
    # `make check-bundle` picks the newest *.tar.gz: the checksum file must not match that.
    assert sorted(p.name for p in out.glob("moodtunes-*-rpi-aarch64.tar.gz")) == [tarball.name]


def test_the_built_bundle_passes_the_installers_check(built_bundle, tmp_path):
    out, _ = built_bundle
    [tarball] = out.glob("moodtunes-*-rpi-aarch64.tar.gz")
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    [bundle] = tmp_path.iterdir()
    listed = {line.split("  ", 1)[1] for line in (bundle / "SHA256SUMS").read_text().splitlines()}
    for needed in ("./provisioning/install-pi.sh", "./provisioning/uninstall-pi.sh", "./provisioning/uplink.env.example",
                   "./provisioning/env.example",
                   "./requirements/hashed-dependencies.txt", "./requirements/hashed-moodtunes.txt",
                   "./systemd/moodtunes-kiosk.service", "./wheels/mtdep-1.0-py3-none-any.whl", "./TARGET"):
        assert needed in listed, needed
    result = bash(f'verify_bundle "{bundle}"', bundle / "provisioning" / "install-pi.sh")
    assert result.returncode == 0, result.stderr
    assert "mtdep==1.0" in (bundle / "requirements" / "hashed-dependencies.txt").read_text()


def test_the_bundle_names_the_python_and_release_it_is_for(built_bundle):
    """install-pi.sh compares TARGET with the Pi's python3 and /etc/os-release before it changes anything."""
    out, _ = built_bundle
    [tarball] = out.glob("moodtunes-*-rpi-aarch64.tar.gz")
    with tarfile.open(tarball) as archive:
        target = archive.extractfile(f"{tarball.name.removesuffix('.tar.gz')}/TARGET").read().decode()
    # and the schema its moodtunes writes (install-pi.sh checks the data against it), the commit it came from
    assert re.fullmatch(rf"python=3\.11\nos=bookworm\nschema={len(MIGRATIONS)}\ncommit=([0-9a-f]{{10}}(\+changes)?|unknown)\n",
                        target), target
    # The Pi's lock file is compiled for that Python too.
    pi_lock = re.search(r"--python-platform aarch64-manylinux_2_36\s*\\\s*--python-version (\S+)", (REPO / "Makefile").read_text())
    assert pi_lock and pi_lock[1] == "3.11"


def test_the_schema_is_read_by_a_python_without_moodtunes_dependencies(tmp_path):
    """`build-bundle.sh` runs with python3 by default: importing the store package needs pydantic,
    and the build failed at its very end, after the downloads."""
    python = tmp_path / "bare-python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')  # no site-packages: no pydantic
    python.chmod(0o755)
    result = bash(f'write_target "{tmp_path}" "{python}" "{REPO}"', BUILD)
    assert result.returncode == 0, result.stderr
    assert f"\nschema={len(MIGRATIONS)}\n" in (tmp_path / "TARGET").read_text()
