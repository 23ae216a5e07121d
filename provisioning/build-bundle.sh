#!/usr/bin/env bash
# Build an offline install bundle for Raspberry Pi OS bookworm (64-bit, Python 3.11, aarch64) on
# any desktop with internet: every wheel the Pi needs, the moodtunes wheel, models, systemd units,
# the example config and the installer. Copy the .tar.gz to the Pi and run install-pi.sh from it.
#
#   provisioning/build-bundle.sh [OUT_DIR]        (default: dist/)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
python=${PYTHON:-python3}
version=$("$python" -c "import tomllib; print(tomllib.load(open('$repo/pyproject.toml', 'rb'))['project']['version'])")
name="moodtunes-$version-rpi-aarch64"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage/wheels" "$stage/requirements"

echo "== moodtunes wheel"
"$python" -m pip wheel -q --no-deps --no-build-isolation -w "$stage/wheels" "$repo" 2>/dev/null \
  || "$python" -m pip wheel -q --no-deps -w "$stage/wheels" "$repo"

echo "== dependency wheels for aarch64 / CPython 3.11 (requirements/pi-aarch64.txt)"
# Raspberry Pi OS bookworm has glibc 2.36: every manylinux tag up to 2.36 fits.
platforms=()
for tag in manylinux2014_aarch64 $(seq -f 'manylinux_2_%g_aarch64' 17 36) linux_aarch64; do
  platforms+=(--platform "$tag")
done
"$python" -m pip download -q --only-binary=:all: --no-deps "${platforms[@]}" \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  -r "$repo/requirements/pi-aarch64.txt" -d "$stage/wheels"

echo "== models, units, config, installer"
cp "$repo/requirements/pi-aarch64.txt" "$stage/requirements/"
mkdir -p "$stage/models"
(cd "$repo/models" && find . \( -name '*.tflite' -o -name '*.json' -o -name 'LICENSE-*' \) -not -path '*/cache/*' -not -path '*/work/*' \
  -exec cp --parents {} "$stage/models/" \;)
cp -r "$repo/systemd" "$stage/"
mkdir -p "$stage/provisioning"
cp "$repo/provisioning/install-pi.sh" "$repo/provisioning/moodtunes.example.toml" "$repo/provisioning/env.example" "$stage/provisioning/"
cp "$repo/README.md" "$stage/"
(cd "$stage" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)

tar -C "$work" -czf "$out/$name.tar.gz" "$name"
echo "== $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1), $(ls "$stage/wheels" | wc -l) wheels)"
