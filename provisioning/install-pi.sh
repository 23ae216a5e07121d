#!/usr/bin/env bash
# Install (or upgrade) moodtunes on Raspberry Pi OS bookworm, 64-bit, from an unpacked offline
# bundle (see build-bundle.sh). Needs no internet when the apt packages below are already present
# (they are on a standard Raspberry Pi OS image with a camera).
#
#   sudo ./provisioning/install-pi.sh
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "install-pi.sh: run as root (sudo $0)" >&2; exit 1; }
[ "$(uname -m)" = aarch64 ] || { echo "install-pi.sh: needs 64-bit Raspberry Pi OS (aarch64), found $(uname -m)" >&2; exit 1; }
bundle=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/moodtunes

if [ -f "$bundle/SHA256SUMS" ]; then
  echo "== checking the bundle"
  (cd "$bundle" && sha256sum --quiet -c SHA256SUMS)
fi

echo "== system packages"
# picamera2 only comes from Raspberry Pi OS; the venv sees it through --system-site-packages.
# The kiosk draws on the console through SDL's KMSDRM driver, which loads libdrm, GBM, EGL, GLES
# and Mesa's GPU driver at run time: Raspberry Pi OS Lite may lack some of them.
needed=(python3-venv python3-picamera2 ffmpeg libsndfile1 fonts-dejavu-core
        libdrm2 libgbm1 libegl1 libgles2 libgl1-mesa-dri)
missing=()
for pkg in "${needed[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
# Chinese, Japanese and Korean song titles need a fallback font: wanted, but no reason to stop an
# offline install.
if ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then
  apt-get install -y --no-install-recommends fonts-wqy-microhei ||
    echo "install-pi.sh: fonts-wqy-microhei is not installed (no network?): Chinese, Japanese and Korean song titles show as boxes until it is" >&2
fi

echo "== user and folders"
id moodtunes >/dev/null 2>&1 || useradd --system --home-dir /var/lib/moodtunes --shell /usr/sbin/nologin moodtunes
usermod -a -G video,audio,input,render moodtunes
install -d -o moodtunes -g moodtunes -m 0750 /var/lib/moodtunes
install -d -m 0755 "$prefix" /etc/moodtunes

echo "== python environment ($prefix/venv)"
[ -x "$prefix/venv/bin/python" ] || python3 -m venv --system-site-packages "$prefix/venv"
# Older bundles installed pygame, which pygame-ce replaces: both own the `pygame` package.
if ls "$prefix"/venv/lib/python3*/site-packages/pygame-[0-9]*.dist-info >/dev/null 2>&1; then
  "$prefix/venv/bin/pip" uninstall -q -y pygame pygame-ce
fi
"$prefix/venv/bin/pip" install -q --no-index --find-links "$bundle/wheels" \
  -r "$bundle/requirements/pi-aarch64.txt"
"$prefix/venv/bin/pip" install -q --no-index --no-deps --force-reinstall "$bundle"/wheels/moodtunes-*.whl

echo "== models"
rm -rf "$prefix/models.new" && cp -r "$bundle/models" "$prefix/models.new"
rm -rf "$prefix/models" && mv "$prefix/models.new" "$prefix/models"
cp "$bundle/README.md" "$prefix/"

echo "== configuration (kept if present)"
[ -f /etc/moodtunes/moodtunes.toml ] || install -m 0644 "$bundle/provisioning/moodtunes.example.toml" /etc/moodtunes/moodtunes.toml
[ -f /etc/moodtunes/env ] || install -m 0640 -g moodtunes "$bundle/provisioning/env.example" /etc/moodtunes/env

echo "== services"
install -m 0644 "$bundle"/systemd/moodtunes-* /etc/systemd/system/
systemctl daemon-reload
systemctl enable moodtunes-kiosk.service moodtunes-uplink.service moodtunes-library.timer
# The scan is a oneshot that lasts until every song is analysed: queue it, don't wait for it.
systemctl --no-block restart moodtunes-library.service || true
systemctl restart moodtunes-kiosk.service moodtunes-uplink.service || true

# As the services' user: a database root created here would lock the services out of it. With the
# kiosk's display driver, so doctor also checks that pygame's SDL has it.
runuser -u moodtunes -- env SDL_VIDEODRIVER=kmsdrm \
  "$prefix/venv/bin/moodtunes" --config /etc/moodtunes/moodtunes.toml doctor || true
echo "moodtunes is installed. Edit /etc/moodtunes/moodtunes.toml (music folders, broker) and"
echo "put secrets in /etc/moodtunes/env, then: sudo systemctl restart moodtunes-kiosk moodtunes-uplink"
