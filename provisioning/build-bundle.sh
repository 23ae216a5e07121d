#!/usr/bin/env bash
# Build an offline install bundle for Raspberry Pi OS bookworm (64-bit, Python 3.11, aarch64) on
# any desktop with internet: every wheel the Pi needs, the moodtunes wheel, models, systemd units,
# the example config and the installer. Copy the .tar.gz to the Pi and run install-pi.sh from it.
#
#   provisioning/build-bundle.sh [OUT_DIR]        (default: dist/)
#
# Besides the tarball it writes TARBALL.sha256 and prints the tarball's sha256: check it on the Pi
# before unpacking (README, "On a Raspberry Pi"). Inside, SHA256SUMS lists every file (install-pi.sh
# refuses any other) and requirements/hashed-*.txt pin each wheel to its sha256 for pip's
# --require-hashes; TARGET names the Python and OS release the Pi must have. Sourced
# (`. build-bundle.sh`), it only defines its functions, for the tests.
set -euo pipefail

# The system the bundle is for: its wheels are this CPython's, and install-pi.sh stops on another
# (TARGET in the bundle) before it changes anything.
PI_PYTHON=3.11
PI_OS=bookworm

# write_target DIR [PYTHON REPO]: DIR/TARGET, the Python (major.minor) and Raspberry Pi OS release
# (codename) the bundle is for; with REPO, also the database schema its moodtunes writes
# (install-pi.sh refuses to put it over data a newer one wrote) and the commit it was built from
# (`moodtunes --version`: every bundle was "0.1.0"), "+changes" when the checkout had some.
write_target() {
  printf 'python=%s\nos=%s\n' "$PI_PYTHON" "$PI_OS" > "$1/TARGET"
  [ $# -ge 3 ] || return 0
  local schema commit
  # by its file: importing the package needs its dependencies, which a plain python3 lacks
  schema=$("$2" -c 'import importlib.util, sys
spec = importlib.util.spec_from_file_location("migrations", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(len(module.MIGRATIONS))' "$3/device/moodtunes/store/migrations.py")
  commit=$(git -C "$3" rev-parse --short=10 HEAD 2>/dev/null) || commit=unknown
  if [ "$commit" != unknown ] && [ -n "$(git -C "$3" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit+changes"
  fi
  printf 'schema=%s\ncommit=%s\n' "$schema" "$commit" >> "$1/TARGET"
}

# write_hashed_requirements PYTHON WHEELS_DIR OUT_DIR: OUT_DIR/hashed-dependencies.txt (every wheel
# but moodtunes') and OUT_DIR/hashed-moodtunes.txt, one `name==version --hash=sha256:...` line per
# project, from the wheels actually downloaded: what `pip install --require-hashes` installs.
write_hashed_requirements() {
  "$1" - "$2" "$3" <<'PY'
import collections, hashlib, pathlib, sys

wheels, out = map(pathlib.Path, sys.argv[1:])
others = sorted(p.name for p in wheels.iterdir() if not p.name.endswith(".whl"))
if others:
    sys.exit(f"build-bundle.sh: not wheels, in {wheels}: {', '.join(others)}")
hashes = collections.defaultdict(list)
for wheel in sorted(wheels.glob("*.whl")):
    # A wheel's name and version hold no "-" (PEP 427 escapes them to "_").
    name, version = wheel.name.split("-")[:2]
    hashes[(name.lower().replace("_", "-"), version)].append(hashlib.sha256(wheel.read_bytes()).hexdigest())
names = collections.Counter(name for name, _ in hashes)
if twice := sorted(name for name, count in names.items() if count > 1):
    sys.exit(f"build-bundle.sh: more than one version of {', '.join(twice)} in {wheels}")
own = [key for key in hashes if key[0] == "moodtunes"]
if len(own) != 1:
    sys.exit(f"build-bundle.sh: expected one moodtunes wheel in {wheels}, found {len(own)}")

def lines(keys):
    return "".join(
        f"{name}=={version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in sorted(hashes[(name, version)])) + "\n"
        for name, version in sorted(keys)
    )

header = "# Written by provisioning/build-bundle.sh from the wheels in this bundle; install-pi.sh installs\n" \
         "# them with pip --require-hashes, so a wheel that differs from the one downloaded is refused.\n"
(out / "hashed-dependencies.txt").write_text(header + lines(k for k in hashes if k[0] != "moodtunes"))
(out / "hashed-moodtunes.txt").write_text(header + lines(own))
PY
}

# write_checksums DIR: DIR/SHA256SUMS over every file below DIR.
write_checksums() {
  local sums
  sums=$(cd "$1" && find . -type f ! -path ./SHA256SUMS -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  printf '%s\n' "$sums" > "$1/SHA256SUMS"
}

main() {
  local repo out python version name work stage
  repo=$(cd "$(dirname "$0")/.." && pwd)
  out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
  python=${PYTHON:-python3}
  version=$("$python" -c "import tomllib; print(tomllib.load(open('$repo/pyproject.toml', 'rb'))['project']['version'])")
  name="moodtunes-$version-rpi-aarch64"
  work=$(mktemp -d)
  # shellcheck disable=SC2064  # $work is meant to be expanded now
  trap "rm -rf '$work'" EXIT
  stage="$work/$name"
  mkdir -p "$stage/wheels" "$stage/requirements"

  echo "== moodtunes wheel"
  "$python" -m pip wheel -q --no-deps --no-build-isolation -w "$stage/wheels" "$repo" 2>/dev/null \
    || "$python" -m pip wheel -q --no-deps -w "$stage/wheels" "$repo"

  echo "== dependency wheels for aarch64 / CPython $PI_PYTHON (requirements/pi-aarch64.txt)"
  # Raspberry Pi OS bookworm has glibc 2.36: every manylinux tag up to 2.36 fits.
  local platforms=() tag
  for tag in manylinux2014_aarch64 $(seq -f 'manylinux_2_%g_aarch64' 17 36) linux_aarch64; do
    platforms+=(--platform "$tag")
  done
  "$python" -m pip download -q --only-binary=:all: --no-deps "${platforms[@]}" \
    --python-version "$PI_PYTHON" --implementation cp --abi "cp${PI_PYTHON/./}" --abi abi3 --abi none \
    -r "$repo/requirements/pi-aarch64.txt" -d "$stage/wheels"

  echo "== hashed requirements (pip --require-hashes on the Pi)"
  cp "$repo/requirements/pi-aarch64.txt" "$stage/requirements/"
  write_hashed_requirements "$python" "$stage/wheels" "$stage/requirements"

  echo "== models, units, config, installer"
  mkdir -p "$stage/models"
  (cd "$repo/models" && find . \( -name '*.tflite' -o -name '*.json' -o -name 'LICENSE-*' \) -not -path '*/cache/*' -not -path '*/work/*' \
    -exec cp --parents {} "$stage/models/" \;)
  cp -r "$repo/systemd" "$stage/"
  mkdir -p "$stage/provisioning"
  cp "$repo/provisioning/install-pi.sh" "$repo/provisioning/uninstall-pi.sh" "$repo/provisioning/moodtunes.example.toml" \
    "$repo/provisioning/env.example" "$repo/provisioning/uplink.env.example" "$stage/provisioning/"
  cp "$repo/README.md" "$stage/"
  write_target "$stage" "$python" "$repo"
  write_checksums "$stage"

  local tarball="$out/$name.tar.gz"
  tar -C "$work" -czf "$tarball" "$name"
  (cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
  echo "== $tarball ($(du -h "$tarball" | cut -f1), $(find "$stage/wheels" -name '*.whl' | wc -l) wheels)"
  echo "== sha256 (check it on the Pi before unpacking: sha256sum -c $name.tar.gz.sha256):"
  cat "$out/$name.tar.gz.sha256"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
