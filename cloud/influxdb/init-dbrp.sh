#!/bin/bash
# Runs once, right after InfluxDB's first setup: map a v1 database name to the bucket so the
# InfluxQL queries of the Grafana dashboards (and the v1 /write API) work on InfluxDB 2.
set -euo pipefail
influx v1 dbrp create \
    --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --db "${DOCKER_INFLUXDB_INIT_BUCKET}" \
    --rp autogen \
    --default \
    --org "${DOCKER_INFLUXDB_INIT_ORG}"
