#!/usr/bin/env bash
# Remove what install-pi.sh installed: the services, the udev rule that gives the video group the
# backlight's switch, /opt/moodtunes and /etc/moodtunes (the settings and the MQTT password). The
# data dir, /var/lib/moodtunes, with the visit history, the forget ledger beside it
# (/var/lib/moodtunes-forgotten: without it a restored backup of the data dir brings forgotten people
# back), and the users moodtunes and moodtunes-uplink that own them, go only with --delete-data: a user deleted from under files it owns leaves them to
# the next system user created, which gets its number. The system packages stay (zram-tools, fonts,
# ffmpeg...), and the swap file on the SD card stays off: it says how to turn it back on.
#
#   sudo ./provisioning/uninstall-pi.sh [--delete-data]
#
# Sourced (`. uninstall-pi.sh`), it only defines its functions, for the tests.
set -euo pipefail

prefix=/opt/moodtunes
etc=/etc/moodtunes
data=/var/lib/moodtunes
forgotten=/var/lib/moodtunes-forgotten
systemd_dir=/etc/systemd/system
backlight_rule=/etc/udev/rules.d/60-moodtunes-backlight.rules
udev_control=/run/udev/control  # udevd's socket: there while udev runs
units=(moodtunes-kiosk.service moodtunes-uplink.service moodtunes-library.timer moodtunes-library.service)

# add_kept_units: units also names those each version in $prefix/venvs keeps: one may have added a
# unit this script (perhaps an older bundle's) doesn't name, which would stay enabled, running
# nothing once $prefix is gone.
add_kept_units() {
  local file
  for file in "$prefix"/venvs/*/systemd/*; do
    if [ -f "$file" ] && [[ " ${units[*]} " != *" ${file##*/} "* ]]; then units+=("${file##*/}"); fi
  done
}

main() {
  local delete_data=
  case ${1:-} in
    "") ;;
    --delete-data) delete_data=1;;
    *) echo "usage: sudo $0 [--delete-data]" >&2; exit 2;;
  esac
  [ "$(id -u)" -eq 0 ] || { echo "uninstall-pi.sh: run as root (sudo $0)" >&2; exit 1; }
  add_kept_units

  echo "== services"
  local present=() unit
  for unit in "${units[@]}"; do
    [ ! -f "$systemd_dir/$unit" ] || present+=("$unit")
  done
  if [ "${#present[@]}" -gt 0 ]; then
    systemctl disable --now "${present[@]}"
    rm -f "${present[@]/#/$systemd_dir/}"
  fi
  # Drop-ins made with `systemctl edit` (a data_dir elsewhere needs one, README).
  for unit in "${units[@]}"; do
    rm -rf "${systemd_dir:?}/$unit.d"
  done
  systemctl daemon-reload
  systemctl reset-failed "${units[@]}" 2>/dev/null || true
  # The kiosk held tty1 (Conflicts=getty@tty1.service): the login prompt comes back now, not only at
  # the next boot.
  systemctl start getty@tty1.service || true

  echo "== $backlight_rule"
  # The switches it gave the video group stay so until the next boot: udev has no rule to undo it.
  rm -f "$backlight_rule"
  if command -v udevadm >/dev/null && [ -S "$udev_control" ]; then udevadm control --reload || true; fi

  echo "== $prefix, $etc"
  rm -rf "$prefix" "$etc"

  if [ -n "$delete_data" ]; then
    echo "== $data (the visit history, the music catalogue), $forgotten, the users"
    rm -rf "$data" "$forgotten"
    # moodtunes-uplink first: the group moodtunes, its primary group, goes with the user moodtunes.
    if id moodtunes-uplink >/dev/null 2>&1; then userdel moodtunes-uplink; fi
    if id moodtunes >/dev/null 2>&1; then userdel moodtunes; fi
  else
    echo "$data stays (visit history, catalogue), with $forgotten, for a later install, and so do the users moodtunes and" \
         "moodtunes-uplink that own it (deleted, their numbers would go to the next system user created," \
         "with the files). To delete both: sudo $0 --delete-data (a data_dir set elsewhere in" \
         "moodtunes.toml stays in any case)"
  fi

  echo "moodtunes is uninstalled. The swap file on the SD card stays off (install-pi.sh turned it off" \
       "against camera frames being paged out to it); to have it back: sudo systemctl enable --now dphys-swapfile"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
