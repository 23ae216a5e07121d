#!/usr/bin/env bash
# Install (or upgrade) moodtunes on Raspberry Pi OS bookworm, 64-bit, from an unpacked offline
# bundle (see build-bundle.sh). It installs with apt what the system lacks, which needs the internet:
# Raspberry Pi OS Lite may lack some of the packages below (display libraries, ffmpeg), and no image
# has zram-tools or all the fallback fonts. Offline, it goes on without those last two, and stops
# on the others.
#
#   sudo ./provisioning/install-pi.sh
#   sudo /opt/moodtunes/install-pi.sh --rollback    # back to the version the last upgrade replaced
#
# An upgrade makes the new venv in $prefix/venvs/ while the installed version runs, then switches
# the $prefix/venv link (which the units run) to it: a failure before leaves the old one running.
# Each venv keeps its version's models, TARGET, systemd units and README: $prefix/models links
# through $prefix/venv to its own, so the one rename switches them too; a switch (an upgrade's or
# a rollback's) puts a copy of its TARGET, its units (exactly those: another version's removed)
# and README in place. Every run first mends units a power cut left another version's, and puts
# in place (or drops) the note of the version --rollback goes to that a switch cut short left.
#
# This checks the bundle against its own SHA256SUMS, which proves it arrived whole, not who made
# it: first compare the tarball's sha256 with the one `make bundle` printed (README, "On a
# Raspberry Pi"). Sourced (`. install-pi.sh`), it only defines its functions, for the tests.
set -euo pipefail

prefix=/opt/moodtunes
etc=/etc/moodtunes
data_dir=/var/lib/moodtunes
os_release=/etc/os-release
systemd_dir=/etc/systemd/system
# The units every version has shipped (systemd/), in the order they stop.
units=(moodtunes-library.timer moodtunes-library.service moodtunes-kiosk.service moodtunes-uplink.service)

indent() { sed 's/^/  /'; }

# python_version PYTHON: its major.minor ("3.11"); nothing if it doesn't run.
python_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

# venv_version VENV: the major.minor of the Python that made it, from its pyvenv.cfg.
venv_version() {
  sed -n 's/^version *= *\([0-9]*\.[0-9]*\).*/\1/p' "$1/pyvenv.cfg" 2>/dev/null || true
}

# check_target BUNDLE: the system is the one the bundle was built for (BUNDLE/TARGET): its wheels
# are one Python's (cp311), its apt packages one Raspberry Pi OS release's. Checked before anything
# changes: on trixie (Python 3.13) pip refused the wheels only after packages, users and a venv
# had been added.
check_target() {
  local target=$1/TARGET want_python want_os python os
  [ -f "$target" ] || { echo "install-pi.sh: $target is missing: rebuild the bundle with make bundle" >&2; return 1; }
  want_python=$(sed -n 's/^python=//p' "$target")
  want_os=$(sed -n 's/^os=//p' "$target")
  python=$(python_version python3)
  os=$(sed -n 's/^VERSION_CODENAME=//p' "$os_release" 2>/dev/null | tr -d "\"'" || true)
  if [ "$python" != "$want_python" ] || [ "$os" != "$want_os" ]; then
    echo "install-pi.sh: this bundle is for Raspberry Pi OS $want_os with Python $want_python, and this" \
         "system is ${os:-of unknown release} with Python ${python:-(no python3)}: nothing was installed." \
         "Use Raspberry Pi OS $want_os (64-bit) (README, On a Raspberry Pi)." >&2
    return 1
  fi
}

# check_schema BUNDLE: the kiosk's database was not written by a newer moodtunes than the bundle's
# (BUNDLE/TARGET's schema; a bundle older than that line says none). An older bundle installed over
# it went ahead: every service then refused the database ("schema version 12 is newer than this
# moodtunes"), the uplink restarting every 10 s for good. Checked before anything changes; a
# database that can't be read is left to doctor.
check_schema() {
  local want have database=$data_dir/moodtunes.db
  want=$(sed -n 's/^schema=//p' "$1/TARGET")
  { [ -n "$want" ] && [ -f "$database" ]; } || return 0
  have=$(command python3 -c 'import sqlite3, sys
print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("PRAGMA user_version").fetchone()[0])' \
    "$database" 2>/dev/null) || return 0
  if [ "$have" -gt "$want" ]; then
    echo "install-pi.sh: $database was written by a newer moodtunes (database schema $have) than this bundle's" \
         "(schema $want), which the services would refuse: install the bundle you upgraded from, or a newer" \
         "one; nothing was installed" >&2
    return 1
  fi
}

# installed PACKAGE: dpkg has PACKAGE installed; not merely its configuration files, left behind by
# apt remove (dpkg -s answers for those too, and their commands are gone).
installed() {
  [ "$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# apt_install PACKAGE...: apt-get install those of PACKAGE... not installed yet, after one
# apt-get update per run: an image's package lists go stale, and apt then asks the mirror for
# versions it no longer has (404). Offline, the update fails and apt makes do with the lists it has.
apt_updated=
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do installed "$pkg" || missing+=("$pkg"); done
  [ "${#missing[@]}" -gt 0 ] || return 0
  if [ -z "$apt_updated" ]; then
    apt_updated=1
    apt-get update ||
      echo "install-pi.sh: apt-get update failed (no network?): installing with the package lists this system has" >&2
  fi
  apt-get install -y --no-install-recommends "${missing[@]}"
}

# verify_bundle DIR: every file of the unpacked bundle is listed in DIR/SHA256SUMS and matches its
# checksum; a missing SHA256SUMS, a file it doesn't list (an added wheel would be installed), a
# listed file that is missing, a symlink or a name it can't hold plainly all stop the install.
verify_bundle() {
  local dir=$1 sums listed actual odd extra missing
  sums="$dir/SHA256SUMS"
  [ -f "$sums" ] || { echo "install-pi.sh: $sums is missing: this bundle can't be checked (rebuild it with make bundle)" >&2; return 1; }
  # sha256sum escapes names with a newline or backslash; nothing in a bundle has one.
  odd=$(cd "$dir" && find . \( ! -type f ! -type d \) -o -name $'*\n*' -o -name '*\\*')
  [ -z "$odd" ] || { echo "install-pi.sh: unexpected entries in the bundle (only plain files belong there): $odd" >&2; return 1; }
  if grep -Evq '^[0-9a-f]{64} [ *]\./[^/]' "$sums"; then
    echo "install-pi.sh: $sums has lines that are not 'SHA256  ./path'" >&2
    return 1
  fi
  listed=$(sed -E 's/^[0-9a-f]{64} [ *]//' "$sums" | LC_ALL=C sort -u)
  actual=$(cd "$dir" && find . -type f ! -path ./SHA256SUMS | LC_ALL=C sort)
  extra=$(LC_ALL=C comm -13 <(printf '%s\n' "$listed") <(printf '%s\n' "$actual"))
  missing=$(LC_ALL=C comm -23 <(printf '%s\n' "$listed") <(printf '%s\n' "$actual"))
  if [ -n "$extra" ]; then
    echo "install-pi.sh: files SHA256SUMS does not list (added to the bundle after it was built?):" >&2
    indent <<<"$extra" >&2
    return 1
  fi
  if [ -n "$missing" ]; then
    echo "install-pi.sh: files SHA256SUMS lists are missing from the bundle:" >&2
    indent <<<"$missing" >&2
    return 1
  fi
  (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS) ||
    { echo "install-pi.sh: the bundle does not match its SHA256SUMS (damaged or changed): not installing" >&2; return 1; }
}

# install_wheels BUNDLE PIP...: the bundle's wheels, offline, each checked against the sha256 the
# bundle build recorded (pip --require-hashes), so a wheel swapped after the check is refused too.
install_wheels() {
  local bundle=$1
  shift
  "$@" install -q --no-index --find-links "$bundle/wheels" --require-hashes \
    -r "$bundle/requirements/hashed-dependencies.txt"
  "$@" install -q --no-index --find-links "$bundle/wheels" --require-hashes --no-deps --force-reinstall \
    -r "$bundle/requirements/hashed-moodtunes.txt"
}

# move_uplink_secret FROM TO: an older install kept MOODTUNES_MQTT__PASSWORD in the env file every
# service reads; move it to the one only the uplink reads (kept last, so it still wins). In any
# case: the settings read it so too, and the units unset it only as spelled here; it is moved
# spelled so (the settings warn, at every start, of the password given in another form), without
# `export` (systemd ignores such a line: the uplink had no password).
move_uplink_secret() {
  local from=$1 to=$2 pattern='^[[:space:]]*(export[[:space:]]+)?MOODTUNES_MQTT__PASSWORD='
  if [ ! -f "$from" ] || ! grep -Eiq "$pattern" "$from"; then return 0; fi
  if [ -s "$to" ] && [ -n "$(tail -c1 "$to")" ]; then echo >> "$to"; fi
  grep -Ei "$pattern" "$from" |
    sed -E 's/^[[:space:]]*(export[[:space:]]+)?[^=]*=/MOODTUNES_MQTT__PASSWORD=/I' >> "$to"
  sed -E -i "/$pattern/Id" "$from"
  echo "install-pi.sh: moved MOODTUNES_MQTT__PASSWORD from $from to $to (only the uplink reads that one)"
}

# unexport_uplink_secret FILE: the MQTT password lines of FILE (uplink.env) without `export`, which
# an older move_uplink_secret kept and systemd ignores (the uplink ran without its password).
unexport_uplink_secret() {
  [ -f "$1" ] || return 0
  sed -E -i 's/^[[:space:]]*export[[:space:]]+(MOODTUNES_MQTT__PASSWORD=)/\1/I' "$1"
}

# check_no_password_in_json FILE: the settings also take the MQTT password inside MOODTUNES_MQTT,
# as JSON ('{"password": ...}'), which the kiosk and the library scan read with the rest of FILE
# (their units unset MOODTUNES_MQTT__PASSWORD alone). The line may hold other settings of theirs,
# so it is not moved: the install stops, before anything changes, saying what to do.
check_no_password_in_json() {
  local file=$1 pattern='^[[:space:]]*(export[[:space:]]+)?MOODTUNES_MQTT=.*password[\"]*[[:space:]]*:'
  if [ -f "$file" ] && grep -Eiq "$pattern" "$file"; then
    echo "install-pi.sh: $file gives the MQTT password inside MOODTUNES_MQTT, which the kiosk and the library" \
         "scan read too: take it out of there and put it in ${file%/*}/uplink.env as MOODTUNES_MQTT__PASSWORD=..." \
         "(only the uplink reads that file), then run install-pi.sh again: nothing was installed" >&2
    return 1
  fi
}

# check_env_file FILE: lines systemd (EnvironmentFile=) reads otherwise than sh (set -a; .), which
# this script's checks and README's commands run by hand use: all looked fine while the services
# got another value, or none. systemd ignores a line that starts with `export` (the MQTT password
# excepted: move_uplink_secret and unexport_uplink_secret write it without), keeps a `# comment`
# after an unquoted value as part of it ("kiosk-1   # the hall" as device_id: every service
# stopped), drops a line's final CR (Windows line endings: sh keeps it in the value), takes a
# line starting with `;` for a comment (sh for an error), and reads "KEY = value" or a first line
# after a byte-order mark (Notepad's) where sh runs a command.
check_env_file() {
  local file=$1 line value number=0 bad=0
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    if [[ $line == *$'\r' ]]; then
      echo "install-pi.sh: $file, line $number ends in a CR (Windows line endings): save it with Unix (LF) ones" >&2
      bad=1
      continue
    fi
    line=${line#"${line%%[![:space:]]*}"}
    case $line in ''|'#'*) continue ;; esac
    if [[ $line == ';'* ]]; then
      echo "install-pi.sh: $file, line $number: start a comment with '#' (sh can't read one that starts with ';')" >&2
      bad=1
      continue
    fi
    if [[ $line =~ ^export[[:space:]] ]]; then
      if ! [[ ${line,,} =~ ^export[[:space:]]+moodtunes_mqtt__password= ]]; then
        echo "install-pi.sh: $file, line $number: systemd ignores a line starting with 'export': write KEY=value" >&2
        bad=1
      fi
      continue
    fi
    if ! [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*=([^[:space:]]|$) ]]; then
      echo "install-pi.sh: $file, line $number: write KEY=value, with no spaces around '=' (and no byte-order mark" \
           "at the start of the file)" >&2
      bad=1
      continue
    fi
    value=${line#*=}
    if [[ $value =~ [[:space:]]# ]] && ! [[ $value =~ ^\'[^\']*\'[[:space:]]*$ || $value =~ ^\"[^\"]*\"[[:space:]]*$ ]]; then
      echo "install-pi.sh: $file, line $number: systemd keeps what follows '#' in the value (a comment only starts a line): put the comment on a line of its own" >&2
      bad=1
    fi
  done < "$file"
  if [ "$bad" -ne 0 ]; then
    echo "install-pi.sh: fix $file as above, then run install-pi.sh again: nothing was installed" >&2
    return 1
  fi
}

# protect_config FILE: the settings file may hold mqtt.password: root writes it, the services'
# group reads it, nobody else does.
protect_config() {
  chown root:moodtunes "$1"
  chmod 0640 "$1"
}

# protect_secret FILE: the uplink's password file is root's alone; systemd reads it for the
# uplink service, which the kiosk and the scan, another user, can't look into.
protect_secret() {
  chown root:root "$1"
  chmod 0600 "$1"
}

# share_data_dir DIR [GROUP]: the uplink (user moodtunes-uplink, group moodtunes) updates the outbox
# in the kiosk's database. An older install made the folder 0750 and the database files 0600: give
# the group what it needs. The kiosk's user can write DIR: a link it left there (moodtunes.db-x ->
# /etc/shadow) gave that file to its group, as root. So each file is opened without following links
# and changed through that handle, only a plain file with one name.
share_data_dir() {
  local dir=$1 group=${2:-moodtunes}
  chmod 0770 "$dir"
  python3 - "$dir" "$group" <<'PY'
import grp, os, stat, sys

folder, gid = sys.argv[1], grp.getgrnam(sys.argv[2]).gr_gid
for name in sorted(os.listdir(folder)):
    if not name.startswith("moodtunes.db"):  # the database, its -wal and -shm, the lock files
        continue
    try:
        fd = os.open(os.path.join(folder, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:  # a link (ELOOP), or gone meanwhile
        print(f"install-pi.sh: {folder}/{name} left as it is: {exc.strerror}", file=sys.stderr)
        continue
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            os.fchown(fd, -1, gid)
            os.fchmod(fd, stat.S_IMODE(info.st_mode) | 0o060)
        else:
            print(f"install-pi.sh: {folder}/{name} left as it is: not a plain file", file=sys.stderr)
    finally:
        os.close(fd)
PY
}

# disk_swap_warnings SWAPS SYS_BLOCK (/proc/swaps /sys/block): swap on a disk or SD card could receive camera frames paged out of the
# kiosk's memory; zram (compressed RAM) can't, unless it writes back to a disk.
disk_swap_warnings() {
  local swaps=$1 sys=$2 device backing
  while read -r device _; do
    case $device in Filename|/dev/zram*) ;; *) echo "install-pi.sh: swap on $device: camera frames could be paged out to it; turn it off (README, On a Raspberry Pi)" >&2;; esac
  done < "$swaps"
  for backing in "$sys"/zram*/backing_dev; do
    [ -f "$backing" ] || continue
    device=$(cat "$backing")
    [ "$device" = none ] || echo "install-pi.sh: $(dirname "$backing") writes back to $device: camera frames could reach it" >&2
  done
}

# no_sd_swap: Raspberry Pi OS swaps to a file on the SD card (dphys-swapfile): replace it with zram
# when apt can get zram-tools (it needs the network), and turn the file off in any case.
# MOODTUNES_KEEP_SWAPFILE=1 leaves it alone.
no_sd_swap() {
  if [ "${MOODTUNES_KEEP_SWAPFILE:-0}" = 1 ]; then
    echo "install-pi.sh: MOODTUNES_KEEP_SWAPFILE=1: the swap file stays" >&2
  elif installed dphys-swapfile; then
    apt_install zram-tools ||
      echo "install-pi.sh: zram-tools is not installed (no network?): no swap until it is (README, On a Raspberry Pi)" >&2
    # Ends with the file deleted; refused (and the install goes on) if RAM can't take what is in it.
    if dphys-swapfile swapoff && dphys-swapfile uninstall; then
      systemctl disable dphys-swapfile.service || true
    else
      echo "install-pi.sh: the SD card swap file could not be turned off now; run: sudo dphys-swapfile swapoff && sudo dphys-swapfile uninstall && sudo systemctl disable dphys-swapfile" >&2
    fi
  fi
  disk_swap_warnings /proc/swaps /sys/block
}

# The udev rule that gives the video group (the kiosk's user is in it: its unit's SupplementaryGroups=)
# the switch of every backlight, bl_power, root's alone to write: the kiosk turns it off while its
# screen sleeps (docs/kiosk.md). udev's GROUP= and MODE= set a device node's, not a sysfs file's:
# the rule changes the file as each backlight appears (at boot, or when its driver loads later).
backlight_rule=/etc/udev/rules.d/60-moodtunes-backlight.rules
udev_control=/run/udev/control  # udevd's socket: there while udev runs

backlight_rule_text() {
  echo "# Written by moodtunes' install-pi.sh (uninstall-pi.sh removes it): the video group, the kiosk's,"
  echo "# may switch each backlight off while the kiosk's screen sleeps."
  echo 'SUBSYSTEM=="backlight", ACTION=="add", RUN+="/bin/chgrp video /sys%p/bl_power", RUN+="/bin/chmod g+w /sys%p/bl_power"'
}

# install_backlight_rule: $backlight_rule made this installer's if it is not (a first install, an
# upgrade from a version with another rule or none), replaced in one step (udev reads only *.rules),
# then applied to the backlights there now where udev runs; where it does not (a chroot, such as
# check-bundle-arm64.sh's, a container) udev applies it from the next boot. A rule udev can't
# apply now does not stop the install: without it the sleeping screen is only black.
install_backlight_rule() {
  if ! cmp -s <(backlight_rule_text) "$backlight_rule"; then
    mkdir -p "${backlight_rule%/*}"
    backlight_rule_text > "$backlight_rule.new"
    chmod 0644 "$backlight_rule.new"
    mv -T "$backlight_rule.new" "$backlight_rule"
    echo "  wrote $backlight_rule"
  fi
  if ! command -v udevadm >/dev/null || [ ! -S "$udev_control" ]; then
    echo "  udev does not run here: the rule applies from the next boot"
  elif ! { udevadm control --reload && udevadm trigger --action=add --subsystem-match=backlight; }; then
    echo "install-pi.sh: udevadm could not apply $backlight_rule now (above): the kiosk switches the backlight" \
         "off from the next boot" >&2
  fi
}

# active_venv: the venv $prefix/venv links to (venvs/ID); nothing when it is no link (no install
# yet, or the real folder an older installer made).
active_venv() {
  if [ -L "$prefix/venv" ]; then readlink "$prefix/venv"; fi
}

# note_previous ID REPLACED: venvs/.previous.ID holds REPLACED (an ID, or nothing), the
# venvs/.previous of the switch to venvs/ID, on the card before the switch's rename: written after
# it, a power cut between the two (or during the write) left the one before, so --rollback went to
# an older version (or, after a rollback, was refused) and the next install deleted the version
# just replaced. settle_previous puts it in place once the link names venvs/ID.
note_previous() {
  echo "$2" > "$prefix/venvs/.previous.$1"
  sync -f "$prefix/venvs/.previous.$1"
}

# settle_previous: a note of note_previous renamed to venvs/.previous if $prefix/venv links to the
# venv it was written for (the switch's rename was done, so the note was whole on the card before
# it), else deleted (the rename was not done, or another installer switched since). Right after
# the rename, at the start of every run and in the EXIT trap: --rollback and the venvs an install
# keeps then agree with the link, wherever a power cut or a signal stopped a switch.
settle_previous() {
  local note
  for note in "$prefix"/venvs/.previous.*; do
    [ -f "$note" ] || continue
    if [ "venvs/${note##*/.previous.}" = "$(active_venv)" ]; then
      mv -T "$note" "$prefix/venvs/.previous"
    else
      rm -f "$note"
    fi
  done
}

# kept_venv: the venv the last switch replaced (venvs/ID), the one --rollback goes to, whole (its
# TARGET, written last) and still kept; nothing if there is none. Not the newest other one, which
# may be a build a power cut stopped before its switch, a version that never ran.
kept_venv() {
  local previous
  previous=$(cat "$prefix/venvs/.previous" 2>/dev/null || true)
  if [ -n "$previous" ] && [ "venvs/$previous" != "$(active_venv)" ] && [ -f "$prefix/venvs/$previous/TARGET" ]; then
    echo "venvs/$previous"
  fi
}

# delete_venv VENV: VENV deleted, its TARGET (the mark of a whole venv) first: a deletion cut short
# (Ctrl+C, a power cut) left a venv half gone with its TARGET, and --rollback went to it.
delete_venv() {
  rm -f "$1/TARGET"
  rm -rf "$1"
}

# drop_venvs KEEP...: delete the venvs in $prefix/venvs but the KEEP ones (venvs/ID): an older
# rollback, a build that stopped half-way.
drop_venvs() {
  local venv
  for venv in "$prefix"/venvs/*; do
    [ -d "$venv" ] || continue
    case " $* " in *" venvs/${venv##*/} "*) continue;; esac
    echo "  deleting $venv"
    delete_venv "$venv"
  done
}

# venv_id BUNDLE: the name of BUNDLE's venv in $prefix/venvs: when it was made (the names sort by
# age) and the commit the bundle was built from; another one's if the same bundle is installed
# again within the second.
venv_id() {
  local id commit
  commit=$(sed -n 's/^commit=//p' "$1/TARGET")
  id=$(date -u +%Y%m%d-%H%M%S)-${commit:-unknown}
  [ ! -e "$prefix/venvs/$id" ] || id+=-$$
  echo "$id"
}

# venv_space_mb BUNDLE: about what a venv of BUNDLE takes, in MB: its wheels' files unpacked, a
# quarter more for the byte-code pip compiles and the venv's own pip, and the models (the only
# copy: $prefix/models links to it; its units and README are a few KB). The 0.1.0 bundle:
# 1,156 MB unpacked, a venv of 1,376 MB.
venv_space_mb() {
  command python3 - "$1" <<'PY'
import pathlib, sys, zipfile

bundle = pathlib.Path(sys.argv[1])
unpacked = sum(entry.file_size for wheel in bundle.glob("wheels/*.whl") for entry in zipfile.ZipFile(wheel).infolist())
models = sum(path.stat().st_size for path in bundle.glob("models/**/*") if path.is_file())
print((unpacked * 5 // 4 + models) // 2**20 + 1)
PY
}

# make_room BUNDLE KEPT: $prefix has room for BUNDLE's venv beside the one in use, which runs
# meanwhile, and KEPT (venvs/ID, the one kept for --rollback, or nothing), which stays until the new
# one is switched to: a build that fails (a full disk) then still leaves a version to roll back to.
# Without that room, KEPT is deleted first if that makes enough (du: what it holds on the card),
# saying that --rollback can't reach it any more; otherwise the install stops, nothing touched.
make_room() {
  local bundle=$1 kept=$2 need free held=0 freed=
  need=$(($(venv_space_mb "$bundle") * 1024))
  free=$(df -Pk "$prefix" | awk 'NR == 2 {print $4}') || true
  if ! [[ $free =~ ^[0-9]+$ ]]; then
    echo "install-pi.sh: df does not say how much room $prefix has: going on without knowing" >&2
    return 0
  fi
  [ "$free" -lt "$need" ] || return 0
  if [ -n "$kept" ]; then
    held=$(du -sk "$prefix/$kept" | cut -f1)
    freed=" ($(((free + held) / 1024)) MB with $prefix/$kept, kept for --rollback, deleted)"
  fi
  if [ $((free + held)) -lt "$need" ]; then
    echo "install-pi.sh: the new version needs about $((need / 1024)) MB in $prefix, which has $((free / 1024)) MB" \
         "free$freed: make room (df -h $prefix), then run install-pi.sh again; the installed version was not touched" >&2
    return 1
  fi
  echo "install-pi.sh: no room for the new version ($((need / 1024)) MB) beside $prefix/$kept, the version kept" \
       "for --rollback ($((free / 1024)) MB free): deleting it first. --rollback can't go back to it any more, and if" \
       "this upgrade fails there will be no version to roll back to" >&2
  delete_venv "${prefix:?}/$kept"
}

# build_venv BUNDLE VENV: a venv of BUNDLE's wheels made afresh in VENV, where it stays (its
# scripts name their folder), with --system-site-packages for Raspberry Pi OS's picamera2; and
# BUNDLE's models, systemd units, README and TARGET, which a switch to VENV puts in place with it.
# TARGET last: a venv without it was not finished. Then on the card (sync) before the switch:
# its rename reaches the card within seconds (the ext4 journal), the files pip wrote up to about
# 30 s later (delayed allocation): a power cut between the two left a live venv of empty files.
build_venv() {
  local bundle=$1 venv=$2
  python3 -m venv --system-site-packages "$venv"
  install_wheels "$bundle" "$venv/bin/pip"
  cp -r "$bundle/models" "$venv/models"
  cp -r "$bundle/systemd" "$venv/systemd"
  cp "$bundle/README.md" "$venv/README.md"
  cp "$bundle/TARGET" "$venv/TARGET"
  sync -f "$venv"
}

# stop_services: on an upgrade, the services and the scan's timer stop only for the switch to the
# new venv and units: a kiosk restarting (or a scan the timer starts) meanwhile would run the new
# venv under the old units. start_services starts them again. Sets stopped.
stopped=
stop_services() {
  local installed=() unit
  while read -r unit; do
    [ ! -f "$systemd_dir/$unit" ] || installed+=("$unit")
  done < <(known_units)
  [ "${#installed[@]}" -gt 0 ] || return 0
  echo "  stopping ${installed[*]} for the switch"
  stopped=1  # before: a hang-up during the stop must start them again (the EXIT trap)
  systemctl stop "${installed[@]}"
}

# start_services: the scan queued, then the moodtunes units installed that have an [Install]
# section (re)started: after a switch those are exactly the active version's, which install_units
# enables; before it, the ones of the version still running. Named here, a unit a version added
# was enabled but not started until the next boot. The operator's own units are left alone.
start_services() {
  local name services=() others=()
  while read -r name; do
    if [ -f "$systemd_dir/$name" ] && installable "$systemd_dir/$name"; then
      case $name in *.service) services+=("$name");; *) others+=("$name");; esac
    fi
  done < <(known_units)
  # The scan is a oneshot that lasts until every song is analysed: queue it, don't wait for it. The
  # kiosk scans as it starts too: the two take turns (a lock), the second finding the work done.
  # (Only if the version has it: systemctl would fail on it with an error line.)
  if [ -f "$systemd_dir/moodtunes-library.service" ]; then
    systemctl --no-block restart moodtunes-library.service || true
  fi
  # A service that stopped on an invalid configuration (exit status 2) is marked failed: start afresh.
  if [ "${#services[@]}" -gt 0 ]; then
    systemctl reset-failed "${services[@]}" || true
    systemctl restart "${services[@]}" || true
  fi
  # The timers last (stop_services stopped them; a first install left them for the next boot):
  # after the scan's restart, its timer's boot trigger, long past, fires at once and finds the scan
  # already queued.
  if [ "${#others[@]}" -gt 0 ]; then systemctl start "${others[@]}"; fi
}

# keep_installed_units VENV: VENV (venvs/X), the version a switch replaces, made by an older
# installer that kept no units with it, keeps those installed now, which it ran under (not by the
# names of the units of the version switched to: a rollback to one that has none, also an older
# installer's, kept none), and the README, for a rollback to it. Whole or not at all: a units
# folder is taken for the version's whole set, and moved in place last; until then each run copies
# the README again (those venvs had none: one there is what a full disk or a power cut cut short).
keep_installed_units() {
  local venv=$prefix/$1 unit
  if [ ! -d "$venv" ] || [ -d "$venv/systemd" ]; then return 0; fi
  rm -rf "$venv/systemd.new"
  mkdir "$venv/systemd.new"
  for unit in "${units[@]}"; do
    if [ -f "$systemd_dir/$unit" ]; then cp "$systemd_dir/$unit" "$venv/systemd.new/"; fi
  done
  if [ -f "$prefix/README.md" ]; then cp "$prefix/README.md" "$venv/README.md"; fi
  mv -T "$venv/systemd.new" "$venv/systemd"
}

# known_units: the name of every moodtunes unit that may be installed, once each: this installer's
# (units, in their order) and those each venv in $prefix/venvs keeps. Another version than the one
# switched to may have one more (a rollback from a version that added a unit), and only those
# names are removed: a unit of the operator's own stays, whatever its name.
known_units() {
  local file
  {
    printf '%s\n' "${units[@]}"
    for file in "$prefix"/venvs/*/systemd/*; do
      if [ -f "$file" ]; then echo "${file##*/}"; fi
    done
  } | awk '!seen[$0]++'
}

# keeps_units ID: venvs/ID kept its version's units (an older installer's venv kept none).
keeps_units() {
  local files=("$prefix/venvs/$1"/systemd/*)
  [ -f "${files[0]}" ]
}

# installable UNIT_FILE: it has an [Install] section, so that a fresh install enables it (the
# kiosk, the uplink, the scan's timer: not the scan, which the timer starts).
installable() {
  grep -q '^\[Install\]' "$1"
}

# units_differ ID: the units installed are not exactly those venvs/ID keeps: one of its units
# missing, changed (a power cut as it was copied, or before its sync) or not enabled, or one only
# another version has still installed.
units_differ() {
  local kept=$prefix/venvs/$1/systemd name
  while read -r name; do
    if [ -f "$kept/$name" ]; then
      cmp -s "$kept/$name" "$systemd_dir/$name" || return 0
      if installable "$kept/$name" && ! systemctl is-enabled --quiet "$name"; then return 0; fi
    elif [ -e "$systemd_dir/$name" ]; then
      return 0
    fi
  done < <(known_units)
  return 1
}

# install_units ID: the units installed made exactly those venvs/ID keeps, as a fresh install of
# that version leaves them: its own copied in (those that changed), then any other version's
# (known_units) disabled and removed, systemd told, and its own enabled (installable). A rollback
# copied the old version's over the newer one's: a unit only the newer version has stayed enabled,
# running the old code, and one only the older has (the upgrade disabled it) stayed disabled.
# A power cut at any step leaves what units_differ finds at the next run. Drop-ins (UNIT.d/, made by systemctl edit) and $etc are the operator's: they stay.
install_units() {
  local kept=$prefix/venvs/$1/systemd name enable=() extra=()
  if ! keeps_units "$1"; then
    echo "install-pi.sh: $prefix/venvs/$1 kept no systemd units (an older installer made it): the ones installed stay" >&2
    systemctl daemon-reload
    return 0
  fi
  while read -r name; do
    if [ -f "$kept/$name" ]; then
      if ! cmp -s "$kept/$name" "$systemd_dir/$name"; then install -m 0644 "$kept/$name" "$systemd_dir/"; fi
      if installable "$kept/$name"; then enable+=("$name"); fi
    elif [ -e "$systemd_dir/$name" ]; then
      extra+=("$name")
    fi
  done < <(known_units)
  if [ "${#extra[@]}" -gt 0 ]; then
    echo "  removing ${extra[*]}: not units of venvs/$1"
    systemctl disable "${extra[@]}"
    rm -f "${extra[@]/#/$systemd_dir/}"
  fi
  systemctl daemon-reload
  if [ "${#enable[@]}" -gt 0 ]; then systemctl enable "${enable[@]}"; fi
}

# install_release_files ID: the systemd units (install_units) and README kept with venvs/ID
# installed, as they were for that version (a rollback ran the old code under the newer version's
# units). The configuration in $etc is the operator's and stays; so does $prefix/install-pi.sh,
# the newest: it knows every layout, and a rollback runs it.
install_release_files() {
  local kept=$prefix/venvs/$1
  install_units "$1"
  if [ -f "$kept/README.md" ]; then install -m 0644 "$kept/README.md" "$prefix/README.md"; fi
}

# repair_units: at the start of every run, before anything else changes, the units of the version
# $prefix/venv links to put in place if those installed are not (units_differ), the services
# restarted under them. A switch installs them after the link's rename, and a power cut between
# the two left the version switched to running under the other's units: no order of a rename and
# several copies avoids that step, so the next run (an install or a --rollback) mends it first.
repair_units() {
  local active
  active=$(active_venv)
  active=${active#venvs/}
  if [ -z "$active" ] || ! keeps_units "$active" || ! units_differ "$active"; then return 0; fi
  echo "== the systemd units installed are not those of $prefix/venvs/$active, the version in use (a switch cut short" \
       "by a power cut, or a unit changed or disabled by hand): putting them in place"
  stop_services
  install_units "$active"
  sync -f "$systemd_dir"
  start_services
  stopped=
}

# exchange A B: A and B swap names in one step (renameat2's RENAME_EXCHANGE, which ext4 has had
# since Linux 3.15; coreutils' mv --exchange is newer than bookworm's 9.1): the one way to put a
# link where a folder is, with no step where neither is there.
exchange() {
  command python3 - "$1" "$2" <<'PY'
import ctypes, os, sys

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
if libc.renameat2(AT_FDCWD, os.fsencode(sys.argv[1]), AT_FDCWD, os.fsencode(sys.argv[2]), RENAME_EXCHANGE):
    sys.exit(f"install-pi.sh: {sys.argv[1]} and {sys.argv[2]} could not swap names: {os.strerror(ctypes.get_errno())}")
PY
}

# follow_venv NAME: $prefix/NAME (models) a link to venv/NAME, the version's own, which
# the switch of the venv link then switches with it: no step where the models are missing or
# another version's (an older installer deleted them, then moved the new copy in; a power cut
# left the kiosk without models, or the new venv with the old ones). Made once: the link is made
# beside the copy an older installer made and takes its place in one step: a folder can't be
# renamed over, so the two swap names (exchange), and the folder, now NAME.new, is deleted. Where
# the filesystem can't (NFS), and as the installer before did, the folder is renamed away
# (NAME.old) first: a power cut before the link is in leaves no NAME, which the next run's switch
# puts in, deleting NAME.old.
follow_venv() {
  local name=$1 path=$prefix/$1
  if [ "$(readlink "$path")" != "venv/$name" ]; then
    rm -rf "$path.new"
    ln -s "venv/$name" "$path.new"
    if [ ! -d "$path" ] || [ -L "$path" ]; then
      mv -T "$path.new" "$path"
    elif ! exchange "$path.new" "$path"; then
      echo "install-pi.sh: renaming $path away, then its link in (a power cut between the two leaves no $path until the next run)" >&2
      rm -rf "$path.old"
      mv -T "$path" "$path.old"
      mv -T "$path.new" "$path"
    fi
  fi
  rm -rf "$path.new" "$path.old"
}

# put_target ID: $prefix/TARGET a copy of venvs/ID's, replaced in one step (made beside it, renamed
# over it). No link through the venv link, as the models are: the installers before this one copy
# a version's TARGET onto it after their switch, and to their cp a link to venv/TARGET was that
# very file ("are the same file"): the bundle upgraded from failed to install again, at every run.
# moodtunes reads the venv's own first (paths.bundle_commit); older versions read this one.
put_target() {
  rm -f "$prefix/TARGET.new"
  cp "$prefix/venvs/$1/TARGET" "$prefix/TARGET.new"
  mv -T "$prefix/TARGET.new" "$prefix/TARGET"
}

# finish_link NAME: the link follow_venv made beside $prefix/NAME renamed into its place if nothing
# is there, for the EXIT trap: a hang-up or Ctrl+C between the two renames follow_venv makes where
# it can't swap names, or before the link's rename where a power cut between them left no
# $prefix/models, ended the install without it (the services started again without models).
finish_link() {
  if [ -L "$prefix/$1.new" ] && [ ! -e "$prefix/$1" ] && [ ! -L "$prefix/$1" ]; then
    mv -T "$prefix/$1.new" "$prefix/$1"
  fi
}

# switch_venv ID: $prefix/venv, which the units name, links to venvs/ID: a link made beside it,
# renamed over it (one step: never no venv, never half of one, and with it ID's models, which
# $prefix/models links through it to), then a copy of ID's TARGET, its units and README in
# place, and all of it on the card (sync: a power cut soon after an upgrade could lose the new
# link). The real folder an older installer made can't be kept (moved, its scripts would name a
# folder that is gone): it is replaced. The venv it replaces is noted as venvs/.previous, the one
# --rollback goes to, before the rename (note_previous) and put in place after it. The services
# are stopped. Sets switching (ID) and switched.
switched=
switching=
# Each step on a line of its own: set -e does not stop at a failure inside `a && b`, which went
# on with the step after it (the models of one version beside the venv of another). The venv
# being built is the live one from the switch on: the EXIT trap must not delete it (building=).
# The link to the version's models is made before the switch where the venv in use has them
# (one of this installer's), else after it (a first install; an older installer's real folder).
switch_venv() {
  local id=$1 replaced
  switching=$id
  replaced=$(active_venv)
  if [ -n "$replaced" ]; then keep_installed_units "$replaced"; fi
  if [ -e "$prefix/venv/models" ]; then follow_venv models; fi
  note_previous "$id" "${replaced#venvs/}"
  ln -sfn "venvs/$id" "$prefix/venv.new"
  if [ -d "$prefix/venv" ] && [ ! -L "$prefix/venv" ]; then
    rm -rf "$prefix/venv.old"
    mv -T "$prefix/venv" "$prefix/venv.old"
  fi
  mv -T "$prefix/venv.new" "$prefix/venv"
  switched=1
  building=
  settle_previous
  put_target "$id"
  follow_venv models
  rm -rf "$prefix/venv.old"
  install_release_files "$id"
  sync -f "$prefix" "$systemd_dir"
}

# rollback: back to the version the last upgrade replaced (its venv, models, TARGET, systemd units
# and README, kept in $prefix/venvs), unless the data is newer than it; the one it leaves is kept
# in turn (a second rollback goes forward again).
rollback() {
  local active previous
  trap unfinished EXIT
  settle_previous
  repair_units
  trap - EXIT
  active=$(active_venv)
  previous=$(kept_venv)
  if [ -z "$previous" ]; then
    echo "install-pi.sh: no earlier version kept in $prefix/venvs to roll back to" >&2
    return 1
  fi
  check_schema "$prefix/$previous"
  trap unfinished EXIT
  echo "== rolling back from ${active:-?} to $previous"
  stop_services
  switch_venv "${previous#venvs/}"
  start_services
  trap - EXIT
  echo "moodtunes rolled back to $previous; ${active:-the version it replaced} is kept (install-pi.sh --rollback returns to it)"
}

# unfinished: the EXIT trap while main changes the system: an install that stops half-way (pip or
# cp on a full disk, a package apt can't get) says so after the error, whatever command failed, and
# what runs now. A move to the models link cut before its rename is finished (finish_link), and so
# is venvs/.previous of a switch cut after its rename (settle_previous). A venv it was making is
# deleted, unless the link names it already (a signal handled right after its rename); services
# stopped before the switch start again on the version they ran. After the switch it names the
# version switched to and the one --rollback would go to, if any: after a rollback's switch that is
# the newer one (it said "on the new version" and "--rollback goes back", and on a first install
# offered a rollback to nothing).
building=
unfinished() {
  local status=$? previous
  [ "$status" -ne 0 ] || return 0
  echo "install-pi.sh: the install (or upgrade) did not complete (exit status $status, error above)." >&2
  # A signal during the link's rename is handled right after it, before switch_venv sets switched.
  if [ -n "$switching" ] && [ "$(active_venv)" = "venvs/$switching" ]; then switched=1 building=; fi
  finish_link models || true
  settle_previous || true
  if [ -n "$building" ]; then delete_venv "$building"; fi
  if [ -n "$switched" ]; then
    previous=$(kept_venv)
    echo "install-pi.sh: the moodtunes services are stopped, on $prefix/$(active_venv), the version switched to" \
         "(a reboot would start them on it)${previous:+; sudo $prefix/install-pi.sh --rollback switches to $prefix/$previous}." >&2
  elif [ -n "$stopped" ]; then
    start_services >/dev/null 2>&1 || true
    echo "install-pi.sh: the version installed before is unchanged, and its services were started again." >&2
  elif [ -e "$prefix/venv" ]; then
    echo "install-pi.sh: the version installed before is unchanged and still runs." >&2
  fi
  echo "install-pi.sh: fix the cause (a full disk? df -h $prefix), then run install-pi.sh again." >&2
}

# service_env FILE COMMAND...: COMMAND with the variables of FILE ($etc/env, which every service
# reads: EnvironmentFile=) instead of any MOODTUNES_* this script was given, as the services get
# them; loaded as README says for commands run by hand (set -a; . FILE). A line that doesn't load
# so (a value with a space, unquoted) is a configuration error: status 2, as doctor's. Never
# uplink.env: the MQTT password stays out of the moodtunes user's processes (UnsetEnvironment=).
service_env() {
  local file=$1
  shift
  if [ -f "$file" ] && ! bash -e -c 'set -a; . "$1"' service_env "$file" >/dev/null; then
    echo "install-pi.sh: $file does not load (above): write KEY=value lines, a value with spaces or \$ in single quotes" >&2
    return 2
  fi
  (
    unset "${!MOODTUNES_@}"
    set -a
    # shellcheck source=/dev/null
    if [ -f "$file" ]; then . "$file"; fi
    set +a
    unset MOODTUNES_MQTT__PASSWORD
    "$@"
  )
}

main() {
  [ "$(id -u)" -eq 0 ] || { echo "install-pi.sh: run as root (sudo $0)" >&2; exit 1; }
  # uname alone can't tell: 32-bit Raspberry Pi OS runs a 64-bit kernel too.
  local arch
  arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
  if [ "$(uname -m)" != aarch64 ] || [ "$arch" != arm64 ]; then
    echo "install-pi.sh: needs 64-bit Raspberry Pi OS (arm64), found $arch on $(uname -m)" >&2
    exit 1
  fi
  # A hang-up (an SSH session dropped), Ctrl+C or a kill exits with a failure, so that the EXIT
  # trap set once the system changes (an install's or a rollback's) says so (bash runs it with
  # status 0 otherwise): a rollback cut short left the services stopped, without a word.
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  case ${1:-} in
    "") ;;
    --rollback) rollback; return;;
    *) echo "usage: sudo $0 [--rollback]" >&2; exit 2;;
  esac
  local bundle
  bundle=$(cd "$(dirname "$0")/.." && pwd)

  echo "== checking the bundle"
  verify_bundle "$bundle"
  check_target "$bundle"
  check_schema "$bundle"
  check_no_password_in_json "$etc/env"
  check_env_file "$etc/env"
  check_env_file "$etc/uplink.env"
  # From here on the system changes: a failure says the install did not complete, and so does a
  # hang-up, Ctrl+C or a kill (the traps above).
  trap unfinished EXIT
  settle_previous
  repair_units

  echo "== system packages"
  # picamera2 only comes from Raspberry Pi OS; the venv sees it through --system-site-packages.
  # The kiosk draws on the console through SDL's KMSDRM driver, which loads libdrm, GBM, EGL, GLES
  # and Mesa's GPU driver at run time: Raspberry Pi OS Lite may lack some of them.
  apt_install python3-venv python3-picamera2 ffmpeg libsndfile1 fonts-dejavu-core \
              libdrm2 libgbm1 libegl1 libgles2 libgl1-mesa-dri
  # Song titles in other scripts need fallback fonts (installed sizes): Chinese, Japanese and Korean
  # from fonts-wqy-microhei (5 MB), Indic scripts, Thai, Ethiopic… from fonts-noto-core (42 MB),
  # emoji in outline from fonts-symbola (3 MB). Wanted, but no reason to stop an offline install.
  local fonts=(fonts-wqy-microhei fonts-noto-core fonts-symbola)
  apt_install "${fonts[@]}" ||
    echo "install-pi.sh: ${fonts[*]}: not all installed (no network?): song titles lose the characters of other scripts and emoji until they are" >&2

  echo "== swap (camera frames must not be paged out to the SD card)"
  no_sd_swap

  echo "== user and folders"
  id moodtunes >/dev/null 2>&1 || useradd --system --home-dir /var/lib/moodtunes --shell /usr/sbin/nologin moodtunes
  usermod -a -G video,audio,input,render moodtunes
  # The uplink's own user, in the kiosk's group: the one given the MQTT password.
  id moodtunes-uplink >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --gid moodtunes moodtunes-uplink
  install -d -o moodtunes -g moodtunes -m 0770 "$data_dir"
  share_data_dir "$data_dir"
  # The forget ledger's folder, beside the data dir (docs/privacy.md): the kiosk's unit makes it too
  # (StateDirectory=), but `moodtunes forget`, run by hand before the kiosk ever started, can't in
  # /var/lib, and would forget people without their mark.
  install -d -o moodtunes -g moodtunes -m 0770 "$data_dir-forgotten"
  install -d -m 0755 "$prefix" "$etc"

  echo "== the backlight's switch, the video group's ($backlight_rule)"
  install_backlight_rule

  echo "== python environment ($prefix/venv)"
  # A new venv beside the one in use, which runs meanwhile and is kept for a rollback, and the one
  # kept for --rollback until the switch, room allowing (make_room): others go first (a build that
  # stopped half-way, a power cut's).
  local active kept made_by python id
  active=$(active_venv)
  kept=$(kept_venv)
  drop_venvs "$active" "$kept"
  make_room "$bundle" "$kept"
  id=$(venv_id "$bundle")
  building=$prefix/venvs/$id
  echo "  making $building (the installed version runs meanwhile)"
  build_venv "$bundle" "$building"
  # This script too, for its --rollback once the bundle's folder is gone.
  cp "$bundle/provisioning/install-pi.sh" "$prefix/"

  echo "== switching $prefix/venv to venvs/$id, with its models and systemd units"
  stop_services
  switch_venv "$id"
  # One another Python made (the OS upgraded under it) has its packages where this Python doesn't
  # look: no use for a rollback.
  made_by=$(venv_version "$prefix/$active")
  python=$(python_version python3)
  if [ -n "$active" ] && [ "$made_by" != "$python" ]; then
    echo "  $prefix/$active was made by Python ${made_by:-?}, not by this system's $python: not kept for a rollback"
    drop_venvs "venvs/$id"
  else
    drop_venvs "venvs/$id" "$active"
    [ -z "$active" ] || echo "  $prefix/$active kept: sudo $prefix/install-pi.sh --rollback returns to it"
  fi

  echo "== configuration (kept if present)"
  [ -f "$etc/moodtunes.toml" ] || first_install=1
  # 0640 root:moodtunes (uplink.env: 0600 root:root), also for a file an older install left
  # readable by more.
  [ -f "$etc/moodtunes.toml" ] || install -m 0640 "$bundle/provisioning/moodtunes.example.toml" "$etc/moodtunes.toml"
  protect_config "$etc/moodtunes.toml"
  [ -f "$etc/env" ] || install -m 0640 -g moodtunes "$bundle/provisioning/env.example" "$etc/env"
  [ -f "$etc/uplink.env" ] || install -m 0600 "$bundle/provisioning/uplink.env.example" "$etc/uplink.env"
  protect_config "$etc/env"
  protect_secret "$etc/uplink.env"
  move_uplink_secret "$etc/env" "$etc/uplink.env"
  unexport_uplink_secret "$etc/uplink.env"

  echo "== services"
  start_services
  trap - EXIT

  # As the services' user: a database root created here would lock the services out of it. With the
  # kiosk's display driver, so doctor also checks that pygame's SDL has it, and the services'
  # $etc/env. Its camera check doesn't open the camera (no visitor agreed to anything here).
  local doctor=0 output
  output=$(service_env "$etc/env" runuser -u moodtunes -- env SDL_VIDEODRIVER=kmsdrm \
    "$prefix/venv/bin/moodtunes" --config "$etc/moodtunes.toml" doctor 2>&1) || doctor=$?
  report_doctor "$doctor" "$output"
}

# Set when this install made $etc/moodtunes.toml: the closing words say what to configure.
first_install=
# report_doctor STATUS OUTPUT: the end of the install, by doctor's exit status (OUTPUT: what it
# printed). 2 is a configuration the services refuse (they stop at once, not restarted): the
# install fails (exit status 1). 1 is a check that failed (a model, the display driver, the data
# dir, TLS to the broker, a mistake in [mqtt], which stops the uplink alone): the install is done
# (exit status 0) and ends with doctor's FAIL lines.
# What is only a warning (no camera or songs yet, a broker out of reach) is in OUTPUT either way.
report_doctor() {
  local restart="sudo systemctl restart moodtunes-kiosk moodtunes-uplink"
  local by_hand="sudo sh -c 'set -a; . $etc/env; exec runuser -u moodtunes -- $prefix/venv/bin/moodtunes doctor'"
  case $1 in
    0)
      printf '%s\n' "$2"
      if [ -n "$first_install" ]; then
        echo "moodtunes is installed. Edit $etc/moodtunes.toml (music folders, broker), put the MQTT"
        echo "password in $etc/uplink.env, then: $restart"
      else  # an upgrade or a rerun: the configuration was kept, and the services run the new version
        echo "moodtunes is installed, with the configuration in $etc kept; the services run it."
      fi;;
    2)
      printf '%s\n' "$2" >&2
      echo "install-pi.sh: installed, but the services can't start: their configuration ($etc/moodtunes.toml, $etc/env) is invalid (above)." >&2
      echo "install-pi.sh: fix it ($by_hand says when it is), then: $restart" >&2
      return 1;;
    *)
      printf '%s\n' "$2"
      echo "install-pi.sh: installed, but doctor found problems: fix them, then: $restart" >&2
      grep '^FAIL' <<<"$2" | indent >&2 || true;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
