#!/bin/sh
# Writes the broker's password file from the environment (compose reads it from .env):
#   MQTT_INGEST_PASSWORD  the ingest's password (user moodtunes-ingest-1, as in the ACL)
#   MQTT_DEVICES          space-separated <device_id>:<password> pairs, one per device
# Usage: make-passwd.sh [OUTPUT]   (default /mosquitto/auth/passwd, the compose volume)
#
# A device id is a device's user name, and the broker uses user names as client ids: so it must be
# a valid device id, and neither an ingest's name nor "deadletter". Passwords reach mosquitto_passwd
# on its standard input, never as arguments, which any user of the host can read (ps).
set -euf  # -f: a "*" in MQTT_DEVICES stays a (refused) entry instead of becoming file names
out="${1:-/mosquitto/auth/passwd}"
: "${MQTT_INGEST_PASSWORD:?set MQTT_INGEST_PASSWORD}"
: "${MQTT_DEVICES:?set MQTT_DEVICES to <device_id>:<password> pairs}"
ingest_user=moodtunes-ingest-1
tmp="$out.new"
trap 'rm -f "$tmp"' EXIT  # a failure leaves no half-written file (a finished one is moved away first)

fail() {
    echo "make-passwd: $*" >&2
    exit 1
}

refuse_placeholder() {  # <what> <password>
    case "$2" in
        change-me*) fail "$1 is still the placeholder from .env.example: set a real password in .env" ;;
    esac
}

check_device_id() {  # the rule of the device's own config (DEVICE_ID_PATTERN), and not reserved
    case "$1" in
        "" | *[!A-Za-z0-9._-]*) fail "'$1' is not a device id (1 to 64 of A-Z a-z 0-9 . _ -)" ;;
        deadletter | moodtunes-ingest*) fail "'$1' is reserved for the broker's own use: choose another device id" ;;
    esac
    if [ "${#1}" -gt 64 ]; then
        fail "'$1' is not a device id (1 to 64 of A-Z a-z 0-9 . _ -)"
    fi
}

add_user() {  # <user> <password>; mosquitto_passwd asks for the password twice
    mosquitto_passwd "$tmp" "$1" >/dev/null <<EOF
$2
$2
EOF
}

refuse_placeholder MQTT_INGEST_PASSWORD "$MQTT_INGEST_PASSWORD"
: >"$tmp"
chmod 0600 "$tmp"
add_user "$ingest_user" "$MQTT_INGEST_PASSWORD"
devices=" "  # the ids so far, each between spaces
count=0
# A refused entry is named by its place, never shown whole: compose keeps what this says in its
# logs, and an entry may be a password (no device id before its ":") or the end of one (a space in it).
for pair in $MQTT_DEVICES; do
    user="${pair%%:*}"
    password="${pair#*:}"
    if [ -z "$user" ] || [ "$user" = "$pair" ]; then
        fail "entry $((count + 1)) of MQTT_DEVICES is not <device_id>:<password> (a password can't have a space)"
    fi
    if [ -z "$password" ]; then
        fail "entry $((count + 1)) of MQTT_DEVICES ('$user') has no password"
    fi
    check_device_id "$user"
    case "$devices" in
        *" $user "*) fail "'$user' is in MQTT_DEVICES twice" ;;
    esac
    refuse_placeholder "the password of $user" "$password"
    add_user "$user" "$password"
    devices="$devices$user "
    count=$((count + 1))
done
# mosquitto drops root privileges to its own user before it reads the file.
# In the broker's container the file must be mosquitto's; on a host without that user, leave it.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto:mosquitto "$tmp"; fi
mv "$tmp" "$out"
echo "make-passwd: wrote $out (ingest + $count devices)"
