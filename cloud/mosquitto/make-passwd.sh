#!/bin/sh
# Writes the broker's password file from the environment (compose reads it from .env):
#   MQTT_INGEST_PASSWORD  the ingest's password (user moodtunes-ingest)
#   MQTT_DEVICES          space-separated <device_id>:<password> pairs, one per device
# Usage: make-passwd.sh [OUTPUT]   (default /mosquitto/auth/passwd, the compose volume)
set -eu
out="${1:-/mosquitto/auth/passwd}"
: "${MQTT_INGEST_PASSWORD:?set MQTT_INGEST_PASSWORD}"
: "${MQTT_DEVICES:?set MQTT_DEVICES to <device_id>:<password> pairs}"

tmp="$out.new"
rm -f "$tmp"
mosquitto_passwd -c -b "$tmp" moodtunes-ingest "$MQTT_INGEST_PASSWORD"
for pair in $MQTT_DEVICES; do
    user="${pair%%:*}"
    password="${pair#*:}"
    if [ -z "$user" ] || [ -z "$password" ] || [ "$user" = "$pair" ]; then
        echo "make-passwd: MQTT_DEVICES entry '$pair' is not <device_id>:<password>" >&2
        rm -f "$tmp"
        exit 1
    fi
    mosquitto_passwd -b "$tmp" "$user" "$password"
done
chmod 0600 "$tmp"
# mosquitto drops root privileges to its own user before it reads the file.
if [ "$(id -u)" = 0 ]; then chown mosquitto:mosquitto "$tmp"; fi
mv "$tmp" "$out"
echo "make-passwd: wrote $out (ingest + $(echo $MQTT_DEVICES | wc -w) devices)"
