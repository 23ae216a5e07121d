#!/usr/bin/env bash
# Install the offline Pi bundle into an emulated 64-bit ARM Debian bookworm (the base of Raspberry
# Pi OS bookworm, same Python 3.11) and use it as the services would: install-pi.sh, doctor, detect
# on the sample photo, a library scan with two workers whose demo tracks must land in their
# categories, one whole kiosk visit on the autopilot, the backlight's udev rule, and the uplink's
# own user sharing the data. It proves the aarch64 wheels, models and installer work together
# without a Pi, and that the installer run again (an upgrade) switches to a new venv (swapping an
# older installer's models copy for the link) and keeps the first for --rollback, which puts back
# the first version's systemd units with it, exactly (a unit only the second has removed, the
# first's enabled and started) and notes the version it left in venvs/.previous; it says nothing
# about the Pi's speed (emulation is ~40x slower) or its camera, screen and sound.
#
#   sudo provisioning/check-bundle-arm64.sh dist/moodtunes-*-rpi-aarch64.tar.gz [ROOTFS_DIR]
#
# Needs root and Debian's qemu-user-static, binfmt-support and debootstrap. The rootfs (default
# build/arm64-rootfs, ~700 MB) is made once with debootstrap (~10 min) and reused; each run
# removes the previous install first. About 15 minutes on 2 cores with the rootfs in place, 22-23
# when the run makes it first, longer on a busy machine (docs/benchmarks.md); the upgrade, which
# installs the wheels a second time, and the rollbacks take about 8 of them.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "check-bundle-arm64.sh: run as root" >&2; exit 1; }
bundle_tar=$(realpath "${1:?usage: check-bundle-arm64.sh BUNDLE.tar.gz [ROOTFS_DIR]}")
repo=$(cd "$(dirname "$0")/.." && pwd)
root=$(realpath -m "${2:-$repo/build/arm64-rootfs}")

# What README tells the user to run on the Pi first (build-bundle.sh writes the .sha256).
if [ -f "$bundle_tar.sha256" ]; then
  (cd "$(dirname "$bundle_tar")" && sha256sum -c "$(basename "$bundle_tar").sha256")
else
  echo "FAIL: no $bundle_tar.sha256 beside the bundle (build-bundle.sh writes it)" >&2
  exit 1
fi

for tool in qemu-aarch64-static debootstrap update-binfmts; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install qemu-user-static binfmt-support debootstrap" >&2; exit 1; }
done
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64

if [ ! -x "$root/usr/bin/python3" ]; then
  echo "== debootstrap arm64 bookworm into $root"
  debootstrap --arch=arm64 \
    --include=python3,python3-venv,ca-certificates,libsndfile1,ffmpeg,libgl1,libglib2.0-0,fonts-dejavu-core \
    bookworm "$root" http://deb.debian.org/debian >/dev/null
fi

mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount "${mounted[i]}" || true; done; }
trap cleanup EXIT
bind() { mount --bind "$1" "$2"; mounted+=("$2"); }
bind /proc "$root/proc"
bind /sys "$root/sys"
bind /dev "$root/dev"
bind /dev/shm "$root/dev/shm"  # multiprocessing's semaphores
# /proc/cpuinfo would describe the x86 host, which the ARM CPU probe in LiteRT/XNNPACK (cpuinfo)
# can't parse: it crashes. Show it a Raspberry Pi 4 (Cortex-A72), the CPU qemu emulates below.
cpuinfo=$(mktemp)
for i in 0 1; do
  printf 'processor\t: %s\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$i"
done > "$cpuinfo"
printf 'Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B (emulated)\n' >> "$cpuinfo"
bind "$cpuinfo" "$root/proc/cpuinfo"

echo "== stand-ins for what only a real Raspberry Pi OS has"
# picamera2 comes from Raspberry Pi OS's own archive; an empty package satisfies the installer
# (doctor then reports that no camera was found, as on a Pi without one).
pkg=$(mktemp -d)
mkdir "$pkg/DEBIAN"
printf 'Package: python3-picamera2\nVersion: 0.0-emulation\nArchitecture: all\nMaintainer: moodtunes\nDescription: empty stand-in for the emulated install check\n' > "$pkg/DEBIAN/control"
dpkg-deb -b "$pkg" "$root/tmp/picamera2-standin.deb" >/dev/null
chroot "$root" dpkg -i /tmp/picamera2-standin.deb >/dev/null
# No systemd runs in a chroot.
printf '#!/bin/sh\necho "systemctl $* (not run: emulation chroot)"\n' > "$root/usr/local/bin/systemctl"
chmod +x "$root/usr/local/bin/systemctl"

echo "== a fresh install from $(basename "$bundle_tar")"
rm -rf "$root/opt/moodtunes" "$root/var/lib/moodtunes" "$root/var/lib/moodtunes-forgotten" "$root/etc/moodtunes" "$root/tmp/bundle"
mkdir -p "$root/tmp/bundle"
tar xzf "$bundle_tar" -C "$root/tmp/bundle"
installer=$(cd "$root" && ls tmp/bundle/*/provisioning/install-pi.sh)
# env -i: nothing of this machine's environment (pip settings, display) leaks into the Pi's.
clean_env=(env -i QEMU_CPU=cortex-a72 PATH=/opt/moodtunes/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)

echo "== the installer refuses a bundle with a file its SHA256SUMS doesn't list"
extra="$root/$(dirname "$(dirname "$installer")")/wheels/extra-1.0-py3-none-any.whl"
echo "not from the bundle build" > "$extra"
if chroot "$root" "${clean_env[@]}" HOME=/root "/$installer" >"$root/tmp/refused.log" 2>&1; then
  echo "FAIL: install-pi.sh installed a bundle with an unlisted wheel" >&2
  exit 1
fi
grep -q "does not list" "$root/tmp/refused.log" || { cat "$root/tmp/refused.log" >&2; echo "FAIL: refused for another reason" >&2; exit 1; }
rm "$extra"
[ ! -e "$root/opt/moodtunes/venv" ] || { echo "FAIL: the refused install left $root/opt/moodtunes/venv" >&2; exit 1; }

echo "== install"
chroot "$root" "${clean_env[@]}" HOME=/root "/$installer"
as_service() { chroot --userspec=moodtunes:moodtunes "$root" "${clean_env[@]}" HOME=/var/lib/moodtunes "$@"; }
owner=$(stat -c %U "$root/var/lib/moodtunes/moodtunes.db" 2>/dev/null || echo none)
[ "$owner" != root ] || { echo "FAIL: the installer left a database owned by root" >&2; exit 1; }
for file_mode in "moodtunes.toml 640 root:moodtunes" "env 640 root:moodtunes" "uplink.env 600 root:root"; do
  read -r file want <<<"$file_mode"
  mode=$(chroot "$root" stat -c '%a %U:%G' "/etc/moodtunes/$file")  # the chroot's names, not this machine's
  [ "$mode" = "$want" ] || { echo "FAIL: /etc/moodtunes/$file is $mode, not $want" >&2; exit 1; }
done
# The udev rule that gives the kiosk's video group the backlight's switch (udev runs in no chroot:
# applied from the next boot).
grep -q 'RUN+="/bin/chgrp video /sys%p/bl_power"' "$root/etc/udev/rules.d/60-moodtunes-backlight.rules" ||
  { echo "FAIL: the installer did not install /etc/udev/rules.d/60-moodtunes-backlight.rules" >&2; exit 1; }
# Not in the rootfs above, so this proves the installer fetches it (for CJK song titles).
[ -f "$root/usr/share/fonts/truetype/wqy/wqy-microhei.ttc" ] ||
  { echo "FAIL: the installer did not install fonts-wqy-microhei" >&2; exit 1; }

echo "== doctor (as the services' user, with the kiosk unit's SDL_VIDEODRIVER=kmsdrm)"
# Fails unless pygame's aarch64 SDL has the KMSDRM driver (PyPI's pygame wheels do not).
as_service env SDL_VIDEODRIVER=kmsdrm moodtunes doctor 2>/dev/null

echo "== the libraries SDL's KMSDRM driver loads at run time (installed by install-pi.sh)"
as_service python -c 'import ctypes; [ctypes.CDLL(lib) for lib in ("libdrm.so.2", "libgbm.so.1", "libEGL.so.1", "libGLESv2.so.2")]'

echo "== detect on the sample photo"
photo=/opt/moodtunes/venv/lib/python3.11/site-packages/skimage/data/astronaut.png
as_service moodtunes detect --json "$photo" 2>/dev/null | tee "$root/tmp/detect.json"
grep -q '"emotion": "happy"' "$root/tmp/detect.json" || { echo "FAIL: no happy face in the sample photo" >&2; exit 1; }

echo "== library: demo tracks, a scan with two workers, their categories"
# Written and scanned by the services' user in its own data dir; the autopilot visit below catalogues the
# demo library again in a throwaway data dir of its own.
as_service moodtunes library demo /var/lib/moodtunes/demo-library >/dev/null 2>&1
as_service moodtunes library scan --workers 2 /var/lib/moodtunes/demo-library 2>/dev/null
as_service python - <<'PY'
import json, subprocess, sys
from moodtunes.library.demo import TRACKS
listed = [json.loads(line) for line in subprocess.run(
    ["moodtunes", "library", "list", "--json"], capture_output=True, text=True, check=True).stdout.splitlines()]
by_title = {t["title"]: t["category"] for t in listed}
wrong = [(t.title, t.expected.value, by_title.get(t.title)) for t in TRACKS if by_title.get(t.title) != t.expected.value]
print(f"{len(TRACKS) - len(wrong)} of {len(TRACKS)} demo tracks in their intended category")
sys.exit(f"FAIL: {wrong}" if wrong else 0)
PY

echo "== one kiosk visit on the autopilot (SDL dummy video and audio)"
if ! as_service env SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy MOODTUNES_DATA_DIR=/var/lib/moodtunes \
    moodtunes demo --autopilot >"$root/tmp/kiosk.log" 2>&1; then
  tail -20 "$root/tmp/kiosk.log" >&2
  echo "FAIL: the autopilot visit did not finish" >&2
  exit 1
fi
grep -E '"level": "(warning|error)"' "$root/tmp/kiosk.log" || true
echo "== the uplink's user updates the database the services' user made; the services' user can't read its password"
as_uplink() { chroot --userspec=moodtunes-uplink:moodtunes "$root" "${clean_env[@]}" HOME=/nonexistent "$@"; }
as_uplink moodtunes uplink --status
as_uplink python -c 'from moodtunes.store import Store; db = Store.open("/var/lib/moodtunes/moodtunes.db")._db; db.execute("BEGIN IMMEDIATE"); db.execute("ROLLBACK")' ||
  { echo "FAIL: moodtunes-uplink can't write /var/lib/moodtunes/moodtunes.db" >&2; exit 1; }
if as_service cat /etc/moodtunes/uplink.env >/dev/null 2>&1; then
  echo "FAIL: the services' user (moodtunes) can read /etc/moodtunes/uplink.env" >&2
  exit 1
fi

echo "== an upgrade (the installer again): a new venv beside the first, kept for a rollback"
first=$(readlink "$root/opt/moodtunes/venv" || true)
[[ $first == venvs/* ]] || { echo "FAIL: /opt/moodtunes/venv is no link to a venv in /opt/moodtunes/venvs" >&2; exit 1; }
# As if the first version had shipped another kiosk unit (both bundles here are one): a line added
# to the unit installed and to the copy its venv keeps. The upgrade installs the second's; each
# --rollback below must install the units kept with the venv it goes to.
units=$root/etc/systemd/system
for unit in "$units/moodtunes-kiosk.service" "$root/opt/moodtunes/$first/systemd/moodtunes-kiosk.service"; do
  [ -f "$unit" ] || { echo "FAIL: no $unit (each venv keeps its version's units)" >&2; exit 1; }
  echo "# the first version's (check-bundle-arm64.sh)" >> "$unit"
done
# /opt/moodtunes/models a copy, as an installer before the link left it: the upgrade swaps it for
# the link in one step (renameat2 through the chroot's Python).
models=$root/opt/moodtunes/models
rm "$models"
cp -r "$root/opt/moodtunes/$first/models" "$models"
if ! chroot "$root" "${clean_env[@]}" HOME=/root "/$installer" >"$root/tmp/upgrade.log" 2>&1; then
  tail -20 "$root/tmp/upgrade.log" >&2
  echo "FAIL: the upgrade failed" >&2
  exit 1
fi
second=$(readlink "$root/opt/moodtunes/venv" || true)
venvs=$(cd "$root/opt/moodtunes" && echo venvs/*)
if [[ $second != venvs/* ]] || [ "$venvs" != "$first $second" ]; then
  echo "FAIL: after the upgrade /opt/moodtunes/venv links to '$second' and $venvs are kept, not a new venv beside $first" >&2
  exit 1
fi
if [ "$(readlink "$models")" != venv/models ] || [ -e "$models.new" ] || grep -q "could not swap names" "$root/tmp/upgrade.log"; then
  echo "FAIL: the upgrade did not swap the models copy for the link to venv/models in one step" >&2
  exit 1
fi
if grep -q "first version's" "$units/moodtunes-kiosk.service"; then
  echo "FAIL: the upgrade left the first version's kiosk unit installed" >&2
  exit 1
fi
# The kiosk unit's command (ExecStart), through the link; the scripts name their venvs/ folder.
as_service /opt/moodtunes/venv/bin/moodtunes --version
as_service env SDL_VIDEODRIVER=kmsdrm /opt/moodtunes/venv/bin/moodtunes doctor >/dev/null 2>&1 ||
  { echo "FAIL: doctor fails after the upgrade" >&2; exit 1; }

# As if the second version had added a unit: kept with its venv and installed, as its upgrade
# does. The rollback to the first must disable and remove it, the one forward put it back.
added=$root/opt/moodtunes/$second/systemd/moodtunes-check.timer
printf '[Timer]\nOnCalendar=daily\n\n[Install]\nWantedBy=timers.target\n' > "$added"
cp "$added" "$units/"

echo "== --rollback to the first venv (and exactly its units), and again, forward to the second"
for want in "$first" "$second"; do
  chroot "$root" "${clean_env[@]}" HOME=/root /opt/moodtunes/install-pi.sh --rollback | tee "$root/tmp/rollback.log"
  [ "$(readlink "$root/opt/moodtunes/venv")" = "$want" ] ||
    { echo "FAIL: after --rollback /opt/moodtunes/venv does not link to $want" >&2; exit 1; }
  for unit in "$root/opt/moodtunes/$want"/systemd/moodtunes-*; do
    cmp -s "$unit" "$units/${unit##*/}" ||
      { echo "FAIL: after --rollback to $want, $units/${unit##*/} is not the one kept with it" >&2; exit 1; }
    if grep -q '^\[Install\]' "$unit" && ! grep -q "^systemctl enable .*${unit##*/}" "$root/tmp/rollback.log"; then
      echo "FAIL: --rollback to $want did not enable ${unit##*/}" >&2
      exit 1
    fi
    if grep -q '^\[Install\]' "$unit" && ! grep -Eq "^systemctl (re)?start .*${unit##*/}" "$root/tmp/rollback.log"; then
      echo "FAIL: --rollback to $want did not start ${unit##*/}" >&2
      exit 1
    fi
  done
  other=$first
  [ "$want" != "$first" ] || other=$second
  previous=$(cat "$root/opt/moodtunes/venvs/.previous")
  notes=$(cd "$root/opt/moodtunes/venvs" && find . -maxdepth 1 -name '.previous.*')
  if [ "venvs/$previous" != "$other" ] || [ -n "$notes" ]; then
    echo "FAIL: after --rollback to $want, venvs/.previous names '$previous', not ${other#venvs/}, or notes are left: $notes" >&2
    exit 1
  fi
  kept=$(cd "$root/opt/moodtunes/$want/systemd" && find . -type f -printf '%f\n' | sort)
  installed=$(cd "$units" && find . -maxdepth 1 -type f -name 'moodtunes-*' -printf '%f\n' | sort)
  [ "$installed" = "$kept" ] ||
    { echo "FAIL: after --rollback to $want the units installed are ${installed//$'\n'/ }, not those kept with it: ${kept//$'\n'/ }" >&2; exit 1; }
  as_service /opt/moodtunes/venv/bin/moodtunes --version
done
echo "OK: the bundle installs, upgrades, rolls back and runs on emulated aarch64"
