#!/bin/sh
# Runs before InfluxDB and Grafana start (compose.yaml, service check-secrets): refuses a .env that
# other users of the host may read (it holds every secret of the stack; cp under the usual umask
# makes it 0644), and the placeholder values of .env.example, since InfluxDB's first start would
# keep a "change-me" admin password and token for good. (mosquitto/make-passwd.sh checks the
# broker's passwords.) compose mounts .env at /cloud/.env; ENV_FILE names another.
set -eu
env_file=${ENV_FILE:-/cloud/.env}
if [ -n "$(find "$env_file" -prune \( -perm -040 -o -perm -004 \) -print 2>/dev/null)" ]; then
    echo "check-secrets: .env can be read by other users of this host (its group or everyone), and it" \
        "holds every secret of the stack: chmod 600 .env" >&2
    exit 1
fi
placeholders=""
note_placeholder() {  # <name> <value>
    case "$2" in
        change-me*) placeholders="$placeholders $1" ;;
    esac
}
note_placeholder INFLUX_ADMIN_PASSWORD "${INFLUX_ADMIN_PASSWORD:-}"
note_placeholder INFLUX_TOKEN "${INFLUX_TOKEN:-}"
note_placeholder GRAFANA_ADMIN_PASSWORD "${GRAFANA_ADMIN_PASSWORD:-}"
note_placeholder INFLUX_INGEST_TOKEN "${INFLUX_INGEST_TOKEN:-}"
note_placeholder INFLUX_GRAFANA_TOKEN "${INFLUX_GRAFANA_TOKEN:-}"
if [ -n "$placeholders" ]; then
    echo "check-secrets:$placeholders still have the placeholder value from .env.example:" \
        "set real secrets in .env (openssl rand -hex 32 makes one)" >&2
    exit 1
fi
if [ -z "${INFLUX_INGEST_TOKEN:-}" ] || [ -z "${INFLUX_GRAFANA_TOKEN:-}" ]; then
    echo "check-secrets: the ingest and Grafana use the InfluxDB admin token; give them tokens of their own" \
        "(cloud/README.md, \"Tokens for the ingest and Grafana\")"
fi
