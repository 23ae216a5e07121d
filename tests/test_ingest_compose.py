"""cloud/compose.yaml can't be run here (no Docker), so check what can be: it parses, every file it
mounts or builds from exists, its variables are all in .env.example, the ingest's environment is
valid IngestSettings, and the broker, InfluxDB and Grafana configs point at what is mounted."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import REPO
from moodtunes_cloud.settings import IngestSettings

# PyYAML comes with the dev extra; without it these checks are skipped, visibly.
yaml = pytest.importorskip("yaml")

CLOUD = REPO / "cloud"
COMPOSE = yaml.safe_load((CLOUD / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def _env_example() -> dict[str, str]:
    values = {}
    for line in (CLOUD / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value.strip('"')
    return values


def _substitute(text: str) -> str:
    example = _env_example()
    return VARIABLE.sub(lambda m: example[m.group(1)], text)


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host source, for the service's volumes."""
    return {spec.split(":")[1]: spec.split(":")[0] for spec in SERVICES[service].get("volumes", [])}


def test_the_stack_has_its_services():
    assert set(SERVICES) == {"mosquitto-users", "mosquitto", "influxdb", "ingest", "grafana"}
    named = set(COMPOSE["volumes"])
    for service in SERVICES:
        for source in _mounts(service).values():
            assert source.startswith(".") or source in named, f"{service}: unknown volume {source}"


def test_every_mounted_file_exists():
    for service in SERVICES:
        for source in _mounts(service).values():
            if source.startswith("."):
                assert (CLOUD / source).exists(), f"{service} mounts missing {source}"


def test_the_ingest_image_builds_from_files_that_exist():
    build = SERVICES["ingest"]["build"]
    context = (CLOUD / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert context == REPO and dockerfile.is_file()
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            sources = line.split()[1:-1]
            for source in sources:
                assert (context / source).exists(), f"COPY {source}: missing"
                assert source.rstrip("/") in kept, f"COPY {source}: excluded by the .dockerignore"


def test_every_variable_the_stack_uses_is_in_the_env_example():
    used = set(VARIABLE.findall((CLOUD / "compose.yaml").read_text()))
    assert used <= set(_env_example()), used - set(_env_example())


def test_the_ingest_environment_is_valid_ingest_settings(monkeypatch):
    environment = SERVICES["ingest"]["environment"]
    for name, value in environment.items():
        assert name.startswith("MOODTUNES_INGEST_"), name
        monkeypatch.setenv(name, _substitute(str(value)))
    settings = IngestSettings()
    assert settings.influx_api == "v2" and settings.mqtt_host == "mosquitto"
    assert settings.influx_url == "http://influxdb:8086"
    assert settings.mqtt_username == "moodtunes-ingest"


def test_the_broker_reads_the_mounted_password_and_acl_files():
    conf = dict(
        line.split(None, 1) for line in (CLOUD / "mosquitto" / "mosquitto.conf").read_text().splitlines()
        if line and not line.startswith("#") and " " in line
    )
    assert conf["allow_anonymous"] == "false"
    broker, users = _mounts("mosquitto"), _mounts("mosquitto-users")
    assert broker["/mosquitto/config/acl"] == "./mosquitto/acl"
    password_dir = conf["password_file"].rsplit("/", 1)[0]
    assert broker[password_dir] == users[password_dir] == "mosquitto-auth"
    assert SERVICES["mosquitto"]["depends_on"]["mosquitto-users"]["condition"] == "service_completed_successfully"
    acl = (CLOUD / "mosquitto" / "acl").read_text()
    assert "user moodtunes-ingest" in acl and "pattern write moodtunes/%u/#" in acl


def test_influxdb_maps_the_bucket_for_influxql_on_first_setup():
    mounts = _mounts("influxdb")
    script = next(src for dst, src in mounts.items() if dst.startswith("/docker-entrypoint-initdb.d/"))
    assert script.endswith(".sh")
    text = (CLOUD / script).read_text()
    assert "influx v1 dbrp create" in text and "DOCKER_INFLUXDB_INIT_BUCKET_ID" in text


def test_grafana_provisions_the_datasource_and_the_dashboards_folder():
    mounts = _mounts("grafana")
    provisioning = CLOUD / mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "moodtunes.yaml").read_text())["providers"]
    dashboards_path = providers[0]["options"]["path"]
    assert (CLOUD / mounts[dashboards_path]).resolve() == CLOUD / "grafana" / "dashboards"
    assert list((CLOUD / "grafana" / "dashboards").glob("*.json"))
    source = yaml.safe_load((provisioning / "datasources" / "influxdb.yaml").read_text())["datasources"][0]
    assert source["type"] == "influxdb" and source["url"] == "http://influxdb:8086"
    assert source["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    grafana_env = SERVICES["grafana"]["environment"]
    assert {"INFLUX_TOKEN", "INFLUX_BUCKET"} <= set(grafana_env)


@pytest.mark.parametrize("script, shell", [("mosquitto/make-passwd.sh", "sh"), ("influxdb/init-dbrp.sh", "bash")])
def test_shell_scripts_parse(script, shell):
    result = subprocess.run([shell, "-n", str(CLOUD / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
