"""cloud/compose.yaml can't be run here (no Docker), so check what can be: it parses, every file it
mounts or builds from exists, its variables are all in .env.example, the ingest's environment is
valid IngestSettings, the broker, InfluxDB and Grafana configs point at what is mounted, only the
broker listens beyond this host, and nothing starts past a placeholder secret."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import REPO
from moodtunes_cloud.ingest import MAX_PAYLOAD_BYTES
from moodtunes_cloud.settings import IngestSettings

# PyYAML comes with the dev extra; without it these checks are skipped, visibly.
yaml = pytest.importorskip("yaml")

CLOUD = REPO / "cloud"
COMPOSE = yaml.safe_load((CLOUD / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
# An innermost ${NAME}, ${NAME:-default} or ${NAME:?error} (its default holds no other reference).
REFERENCE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^${}]*))?\}")
# The certificate folder: git ignores it (it holds the TLS key), and Docker creates it if missing.
CERTS = "./mosquitto/certs"
DOT_ENV = "./.env"  # the operator's secrets: git ignores it too


def _env_example() -> dict[str, str]:
    values = {}
    for line in (CLOUD / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value.strip('"')
    return values


def _substitute(text: str, **env: str) -> str:
    """Compose's interpolation, nested references included, with .env.example's values and ``env``."""
    values = _env_example() | env

    def resolve(reference: re.Match) -> str:
        name, operator, argument = reference.groups()
        value = values.get(name, "")
        if operator in (":-", "-"):
            return value if value or (operator == "-" and name in values) else argument
        if operator in (":?", "?"):
            assert value, f"{name}: {argument}"
        return value

    while REFERENCE.search(text):
        text = REFERENCE.sub(resolve, text)
    return text


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host source, for the service's volumes (short syntax, or long)."""
    return {
        spec["target"] if isinstance(spec, dict) else spec.split(":")[1]:
        spec["source"] if isinstance(spec, dict) else spec.split(":")[0]
        for spec in SERVICES[service].get("volumes", [])
    }


def test_the_stack_has_its_services():
    assert set(SERVICES) == {"check-secrets", "mosquitto-users", "mosquitto", "influxdb", "ingest", "grafana"}
    named = set(COMPOSE["volumes"])
    for service in SERVICES:
        for source in _mounts(service).values():
            assert source.startswith(".") or source in named, f"{service}: unknown volume {source}"


def test_every_mounted_file_exists():
    for service in SERVICES:
        for source in _mounts(service).values():
            if source.startswith(".") and source not in (CERTS, DOT_ENV):
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
    used = set(re.findall(r"\$\{(\w+)", (CLOUD / "compose.yaml").read_text()))
    assert used <= set(_env_example()), used - set(_env_example())


def test_the_ingest_environment_is_valid_ingest_settings(monkeypatch):
    environment = SERVICES["ingest"]["environment"]
    for name, value in environment.items():
        assert name.startswith("MOODTUNES_INGEST_"), name
        monkeypatch.setenv(name, _substitute(str(value)))
    settings = IngestSettings()
    assert settings.influx_api == "v2" and settings.mqtt_host == "mosquitto"
    assert settings.influx_url == "http://influxdb:8086"
    # The broker makes the user name the client id: the same here, so the session is the one the
    # broker kept for moodtunes-ingest-1 before it did.
    assert settings.mqtt_username == settings.mqtt_client_id == "moodtunes-ingest-1"
    assert "mem_limit" in SERVICES["ingest"]


def test_the_ingest_keeps_its_dead_letters_on_a_volume_it_may_write():
    """Nobody may read the dead-letter topic with the shipped ACL: the folder is the letters' only copy."""
    folder = SERVICES["ingest"]["environment"]["MOODTUNES_INGEST_DEAD_LETTER_DIR"]
    assert _mounts("ingest")[folder] in COMPOSE["volumes"]
    dockerfile = (CLOUD / "Dockerfile").read_text()
    assert f"mkdir -p {folder} && chown nobody {folder}" in dockerfile
    assert dockerfile.index(f"chown nobody {folder}") < dockerfile.index("USER nobody")


def test_the_ingest_and_grafana_use_their_own_tokens_once_set_else_the_admin_token():
    ingest_token = SERVICES["ingest"]["environment"]["MOODTUNES_INGEST_INFLUX_TOKEN"]
    grafana_token = SERVICES["grafana"]["environment"]["INFLUX_TOKEN"]
    admin = _env_example()["INFLUX_TOKEN"]
    assert _substitute(ingest_token) == _substitute(grafana_token) == admin
    assert _substitute(ingest_token, INFLUX_INGEST_TOKEN="write-only") == "write-only"
    assert _substitute(grafana_token, INFLUX_GRAFANA_TOKEN="read-only") == "read-only"


def test_nothing_starts_with_a_placeholder_secret():
    """check-secrets runs first and sees every secret that InfluxDB and Grafana take."""
    check = SERVICES["check-secrets"]
    script = _mounts("check-secrets")[check["command"][-1]]
    assert (CLOUD / script).is_file()
    for service in ("influxdb", "grafana"):
        assert SERVICES[service]["depends_on"]["check-secrets"]["condition"] == "service_completed_successfully"
    secrets = {"INFLUX_ADMIN_PASSWORD", "INFLUX_TOKEN", "GRAFANA_ADMIN_PASSWORD", "INFLUX_INGEST_TOKEN",
               "INFLUX_GRAFANA_TOKEN"}
    assert set(check["environment"]) == secrets
    assert all(name in (CLOUD / script).read_text() for name in secrets)


def test_the_secrets_check_sees_the_mode_of_env_and_a_missing_one_is_no_folder():
    """.env holds every secret: check-secrets refuses it readable by others, so it must see the file
    itself, where the script looks; with short syntax Docker would make a missing one a folder."""
    [dot_env] = [spec for spec in SERVICES["check-secrets"]["volumes"] if isinstance(spec, dict)]
    assert (dot_env["type"], dot_env["source"], dot_env["read_only"]) == ("bind", DOT_ENV, True)
    assert dot_env["bind"]["create_host_path"] is False
    assert f"ENV_FILE:-{dot_env['target']}" in (CLOUD / "check-secrets.sh").read_text()


def test_only_the_broker_is_published_beyond_this_host():
    """Grafana and InfluxDB speak plain HTTP; devices need the broker (TLS on 8883 once enabled)."""
    assert SERVICES["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    assert SERVICES["influxdb"]["ports"] == ["127.0.0.1:8086:8086"]
    assert SERVICES["mosquitto"]["ports"] == ["1883:1883", "8883:8883"]
    assert {"check-secrets", "mosquitto-users", "ingest"}.isdisjoint(s for s in SERVICES if "ports" in SERVICES[s])


def _broker_conf(uncomment_tls: bool = False) -> list[tuple[str, str]]:
    lines = (CLOUD / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    if uncomment_tls:
        lines = [line.removeprefix("#") if line.startswith(("#listener 8883", "#use_username", "#certfile", "#keyfile"))
                 else line for line in lines]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("uncomment_tls", [False, True])
def test_every_listener_takes_the_user_name_as_client_id(uncomment_tls):
    """A listener's own settings follow its `listener` line; a device must not take over another
    client's id (the ingest's, and with a clean start its session)."""
    conf = _broker_conf(uncomment_tls)
    starts = [n for n, (key, _) in enumerate(conf) if key == "listener"]
    assert len(starts) == (2 if uncomment_tls else 1)
    for start, end in zip(starts, [*starts[1:], len(conf)], strict=True):
        assert ("use_username_as_clientid", "true") in conf[start:end]
    if uncomment_tls:
        certificates = {value.rsplit("/", 1)[0] for key, value in conf if key in ("certfile", "keyfile")}
        assert certificates == {"/mosquitto/certs"}
        assert _mounts("mosquitto")["/mosquitto/certs"] == CERTS


def test_the_broker_takes_no_packet_bigger_than_the_ingest_takes_a_payload():
    """The topic and headers of a device's publish fit in 4 KiB beside the largest payload."""
    max_packet_size = int(dict(_broker_conf())["max_packet_size"])
    assert MAX_PAYLOAD_BYTES < max_packet_size <= MAX_PAYLOAD_BYTES + 4096


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
    acl = [line for line in (CLOUD / "mosquitto" / "acl").read_text().splitlines() if line and not line.startswith("#")]
    assert acl == ["user moodtunes-ingest-1", "topic read moodtunes/+/visit", "topic read moodtunes/+/status",
                   "topic write moodtunes/deadletter", "pattern write moodtunes/%u/visit", "pattern write moodtunes/%u/status"]


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


@pytest.mark.parametrize("script, shell", [("mosquitto/make-passwd.sh", "sh"), ("check-secrets.sh", "sh"),
                                           ("influxdb/init-dbrp.sh", "bash")])
def test_shell_scripts_parse(script, shell):
    result = subprocess.run([shell, "-n", str(CLOUD / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
