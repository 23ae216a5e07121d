"""The ingest's settings, all from MOODTUNES_INGEST_* environment variables (the container way).

Validated once at start; a bad value, or a variable with the prefix that is no setting (a typo
would otherwise leave its setting at the default, silently), becomes one line naming the variable.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from moodtunes.config import TOPIC_PREFIX_PATTERN, unknown_variables
from moodtunes.events import MAX_EVENT_BYTES
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MOODTUNES_INGEST_"


class SettingsError(Exception):
    """A configuration problem, in one line."""


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    mqtt_host: str = "localhost"
    mqtt_port: int = Field(1883, gt=0, lt=65536)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_tls: bool = False
    mqtt_ca_file: Path | None = None
    mqtt_client_id: str = Field(
        default_factory=lambda: f"moodtunes-ingest-{socket.gethostname()}",
        description="persistent: the broker queues visits for this ingest while it is away",
    )
    mqtt_session_expiry_seconds: int = Field(7 * 24 * 3600, ge=0)
    # Both go into the subscriptions: a wildcard or a "/" where MQTT takes none made paho refuse them in
    # the connect callback, which ended its network thread, and the ingest ran on taking nothing.
    topic_prefix: str = Field("moodtunes", pattern=TOPIC_PREFIX_PATTERN)
    share_group: str = Field(
        "", pattern=r"^[^+#/]*$", description="empty: one ingest, a plain subscription; several: the same secret "
        "name (e.g. `openssl rand -hex 16`; no / + #) in each, and they split the load (anyone who knows it can join "
        "the group)",
    )
    dead_letter: bool = Field(True, description="republish rejected payloads to {topic_prefix}/deadletter")
    dead_letter_dir: Path | None = Field(
        None, description="where rejected messages are kept, a JSON line each, to be replayed (compose: a volume)",
    )
    dead_letter_max_bytes_per_day: int = Field(
        200 * 1024 * 1024, gt=0, description="a device's dead-letter file of a day grows no bigger: the letters "
        "beyond are only counted in the log (a device flooding the broker would otherwise fill the volume)",
    )
    dead_letter_junk_bytes_per_day: int = Field(
        10 * 1024 * 1024, gt=0, description="of that file, what the letters replay can never write (not JSON, too "
        "big, invalid, a wrong clock) may take: the rest is kept for those it can (a newer schema_version...)",
    )
    dead_letter_keep_days: int = Field(
        30, ge=0, description="a dead-letter file is deleted once its day (in its name) is this many days past: "
        "time to notice rejections on the dashboards and replay them, while a letter keeps a whole visit, the "
        "person's profile_key with it; 0 keeps them until deleted by hand",
    )

    influx_api: Literal["v1", "v2"] = Field("v2", description="v1: InfluxDB 1.x /write; v2: InfluxDB 2 API")
    influx_url: str = Field(
        "http://localhost:8086", pattern=r"^https?://[^/\s]+",
        description="http(s)://host:port: without the scheme the client can't reach it and would retry for ever",
    )
    influx_db: str = Field("moodtunes", min_length=1, description="v1: the database (created if missing)")
    influx_bucket: str = Field("moodtunes", min_length=1, description="v2: the bucket")
    influx_org: str = "moodtunes"
    influx_token: SecretStr | None = Field(None, description="v2 token (v1: sent as a token if set, instead of a user)")
    influx_username: str | None = Field(None, description="v1 user, when InfluxDB 1.x has auth enabled (HTTP Basic auth)")
    influx_password: SecretStr | None = None
    influx_timeout_seconds: float = Field(10.0, gt=0)

    retry_seconds: float = Field(5.0, gt=0, description="wait between attempts to write held points")
    retry_queue_size: int = Field(10_000, gt=0, description="unacknowledged visits held while InfluxDB is down; also the MQTT Receive Maximum, "
                                  "so the broker queues the rest")
    retry_queue_max_bytes: int = Field(
        64 * 1024 * 1024, ge=MAX_EVENT_BYTES, description="and their payloads' bytes at most (a held visit takes about "
        "1.6 times its payload in memory: 10,000 at the size limit would take 3.3 GB); the oldest beyond are left "
        "with the broker",
    )


def load_ingest_settings() -> IngestSettings:
    if unknown := unknown_variables(ENV_PREFIX, [name.upper() for name in IngestSettings.model_fields]):
        plural = "s" if len(unknown) > 1 else ""
        raise SettingsError(f"ingest settings: unknown variable{plural} {', '.join(unknown)}")
    try:
        return IngestSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"ingest settings: {problems}") from None
