"""Typed settings: one TOML file, every key overridable by MOODTUNES_* environment variables.

Validated once at start; a bad file or value becomes one ConfigError line naming the key.
Environment names are ``MOODTUNES_<KEY>`` for top-level keys and ``MOODTUNES_<SECTION>__<KEY>``
for keys in a section, e.g. ``MOODTUNES_DATA_DIR`` or ``MOODTUNES_MQTT__HOST``. Any other
``MOODTUNES_*`` variable is an error too (``OTHER_VARIABLES`` lists those read elsewhere): a typo
such as ``MOODTUNES_MQTT_ENABLED`` would otherwise leave its setting at the default, silently.
A mistake in [mqtt] (or a MOODTUNES_MQTT* variable) is an error only for the uplink, which sends:
the commands that send nothing load without it, uploading off (``load_settings(mqtt_needed=False)``).
Paths have ``~`` expanded here, once, so every command sees the same folder.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import socket
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

logger = logging.getLogger(__name__)

SYSTEM_CONFIG = Path("/etc/moodtunes/moodtunes.toml")
UPLINK_SECRETS = Path("/etc/moodtunes/uplink.env")  # the MQTT password, systemd's to read for the uplink
SYSTEM_DATA_DIR = Path("/var/lib/moodtunes")  # the services' StateDirectory=
ENV_PREFIX = "MOODTUNES_"
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._-]+$"  # the same rule as VisitEvent.device_id
TOPIC_PREFIX_PATTERN = r"^[^+#/]+(/[^+#/]+)*$"  # MQTT topic levels, no wildcards (the ingest's rule too)
MAX_DEVICE_ID_LENGTH = 64

SECRET_WORDS = ("password", "secret", "token")  # keys whose values an error must not echo
# What open_camera understands (it checks again, and says whether the camera opens).
CAMERA_SOURCE = re.compile(r"auto|picamera2|sample|opencv(:\d+)?|replay:.+", re.IGNORECASE)
# MOODTUNES_* variables that are no setting, read elsewhere.
OTHER_VARIABLES = (
    "MOODTUNES_CONFIG",  # load_settings: the config file
    "MOODTUNES_MODELS_DIR",  # paths.models_dir: where the shipped models are
    "MOODTUNES_KEEP_SWAPFILE",  # provisioning/install-pi.sh
    "MOODTUNES_REQUIRE_SERVICES",  # the tests: fail instead of skip without mosquitto and influxd
)
# Whole families read elsewhere: the cloud ingest (which checks its own; a developer's shell may
# hold both kinds) and the tests' helpers in subprocesses.
OTHER_PREFIXES = ("MOODTUNES_INGEST_", "MOODTUNES_TEST_")


def is_device_id(text: str) -> bool:
    """Whether ``text`` passes as a device_id (setting, event field, MQTT topic level)."""
    return len(text) <= MAX_DEVICE_ID_LENGTH and re.fullmatch(DEVICE_ID_PATTERN, text) is not None


class ConfigError(Exception):
    """A configuration problem, worded for one line on a terminal."""


def _names_mqtt(variable: str) -> bool:
    """Whether a MOODTUNES_* variable is (or, misspelt, was meant as) one of the [mqtt] section's."""
    name = variable.upper()
    return name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX):].startswith("MQTT")


# Set while the settings are read without [mqtt] and its variables, for a command that sends
# nothing once a mistake was found there (see load_settings).
_mqtt_set_aside: ContextVar[bool] = ContextVar("mqtt_set_aside", default=False)


def _not_empty(value: Any) -> Any:
    """An empty path is the current folder, wherever a command happens to start: never meant."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty (an empty path would be the current folder)")
    return value


# The folder relative paths are taken from while settings load: the config file's, else the
# current one (see _absolute).
_relative_to: ContextVar[Path | None] = ContextVar("relative_to", default=None)


def _absolute(path: Path) -> Path:
    """``path`` with "~" expanded and, if relative, joined to the config file's folder (else to the
    current folder), once, here: `report` run from another folder than `library scan` found
    another database and library."""
    return (_relative_to.get() or Path.cwd()) / _home_expanded(path)


def _home_expanded(path: Path) -> Path:
    """``path`` with "~" or "~NAME" expanded; ValueError, for one line naming the key, where there
    is no such home (pathlib's RuntimeError was a traceback)."""
    try:
        return path.expanduser()
    except RuntimeError:
        raise ValueError(f"{path.parts[0]} names no home folder here (no such user, or HOME unset)") from None


# A path setting, made absolute as it loads so that the doctor, the scan and the kiosk see one folder.
UserPath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_absolute)]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads true as 1: `idle_timeout_s = true` would end every visit after 1 s."""
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError("must be a number, not true or false")
        return value


class CameraSettings(Section):
    source: str = Field(
        "auto", description="auto | picamera2 | opencv:N | replay:PATH | sample"
    )
    width: int = Field(640, gt=0)
    height: int = Field(480, gt=0)
    fps: int = Field(30, gt=0, le=120)
    retry_seconds: float = Field(2.0, gt=0.0, le=60.0, description="wait between attempts to reopen a failed camera")
    sample_when_missing: bool = Field(
        False, description="show the built-in sample photo when the camera can't be opened (the demo does; "
        "never on the appliance, where a photo's mood would pass for the visitor's)")

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        """A typo must stop the start, not leave the kiosk on the manual mood picker for good. A
        replay path is made absolute as every path setting is (it was taken from wherever the
        kiosk started, and "~NAME" of no user ended doctor in pathlib's RuntimeError)."""
        if not CAMERA_SOURCE.fullmatch(source.strip()):
            raise ValueError("must be auto, picamera2, opencv:N (e.g. opencv:0), replay:PATH or sample")
        kind, _, path = source.strip().partition(":")
        if kind.lower() == "replay":  # a path as the others: "~" expanded, relative to the config file's folder
            return f"{kind}:{_absolute(Path(path))}"
        return source


class VisionSettings(Section):
    face_model: UserPath | None = Field(None, description="BlazeFace .tflite; default: the one mediapipe ships")
    min_face_score: float = Field(0.5, ge=0.0, le=1.0)
    scan_seconds: float = Field(3.0, gt=0.0, le=30.0)
    uncertain_below: float = Field(0.45, ge=0.0, le=1.0)
    crop_margin: float = Field(
        0.05, ge=-0.25, le=1.0, description="face crop grows by this fraction of the box on each side (FER framing)"
    )
    crop_shift: float = Field(
        0.0, ge=-0.5, le=0.5, description="face crop centre moves this many box heights up the face (FER framing)"
    )
    face_input_size: int = Field(
        128, ge=64, le=256, multiple_of=16, description="BlazeFace input side; 128 is native, smaller is faster"
    )


class EmotionSettings(Section):
    model: UserPath | None = Field(None, description="int8 .tflite; default: the shipped model")
    threads: int = Field(1, ge=1, le=8)


class LibrarySettings(Section):
    paths: Annotated[list[UserPath], NoDecode] = Field(default_factory=list, description="music folders to scan")
    demo: bool = Field(True, description="generate and use a demo library when no paths are set")
    workers: int = Field(0, ge=0, description="analysis processes; 0 = one per core")
    model: UserPath | None = Field(None, description="music mood model JSON; default: the shipped one")

    @field_validator("paths", mode="before")
    @classmethod
    def _split_paths(cls, paths: Any) -> Any:
        """An environment variable is one string: a JSON list, or folders separated by os.pathsep
        like PATH, so that MOODTUNES_LIBRARY__PATHS=/home/pi/Music works as it reads."""
        if not isinstance(paths, str):
            return paths
        if not paths.lstrip().startswith("["):
            return [part for part in paths.split(os.pathsep) if part]
        try:
            return json.loads(paths)
        except ValueError as exc:
            raise ValueError(
                f"not a valid JSON list ({exc}); give folders as [\"/music\", \"/more\"] or as "
                f"/music{os.pathsep}/more"
            ) from None


# 480 px at least each way: below that (a 480x320 panel) a keyboard row or a page of songs has no
# room for 48 px touch targets. Tested: 800x480, 1024x600, 1280x720, 480x800.
KIOSK_MIN_SIDE = 480
# The largest side of a window or screen: a 4K panel's. A size typed wrong (99999x99999) made a
# 16384x16384 window that took 4 GB and most of a minute to draw.
KIOSK_MAX_SIDE = 4096


class KioskSettings(Section):
    width: int = Field(800, ge=KIOSK_MIN_SIDE, le=KIOSK_MAX_SIDE, description="window or screen width in px (480-4096)")
    height: int = Field(480, ge=KIOSK_MIN_SIDE, le=KIOSK_MAX_SIDE, description="window or screen height in px (480-4096)")
    fullscreen: bool = False
    idle_timeout_s: float = Field(90.0, gt=0)
    volume: float = Field(0.7, ge=0.0, le=1.0)
    larger_text: bool = Field(False, description="text sizes x1.25, until the welcome screen's toggle "
                              '("Larger text", "Normal text") is used: its choice is kept instead')
    sleep_after_s: float = Field(
        600.0, ge=0, description="the screen goes black (backlight off) after this long on the welcome screen "
        "with no touch, until touched; 0 = never")


class MqttSettings(Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(1883, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    ca_file: UserPath | None = None
    topic_prefix: str = Field("moodtunes", pattern=TOPIC_PREFIX_PATTERN, description="MQTT topic levels, no wildcards")
    qos: int = Field(1, description="MQTT QoS of uploads: only 1, kept so that files saying qos = 1 still load")
    retry_seconds: float = Field(10.0, gt=0, description="first wait after a failed upload; doubles per failure")
    max_retry_seconds: float = Field(300.0, gt=0, description="the longest wait between upload attempts")
    poll_seconds: float = Field(5.0, gt=0, le=3600, description="how often the uplink looks for new visits")
    ack_timeout_seconds: float = Field(10.0, gt=0, description="how long to wait for the broker's PUBACK")
    status_seconds: float = Field(
        300.0, gt=0, description="how often the uplink publishes the device's status (also after each batch sent)"
    )
    keep_sent_days: int = Field(
        90, ge=0, le=36500, description="days the outbox keeps an event's payloads after the broker acknowledged "
        "it, for `uplink --resend-since` after a broker's crash; then only the device ids it went under stay, for "
        "`forget`; 0 keeps them for good (at most 100 years: a million days back is before the year 1)",
    )

    @model_validator(mode="after")
    def _a_host_to_send_to(self) -> MqttSettings:
        """Uploading on, a broker to send to: an empty host passed, and paho's bare "Invalid host."
        ended the uplink service at each start. Checked only with uploading on, as qos is."""
        if self.enabled and not self.host.strip():
            raise ValueError("mqtt.host is empty: set it to the broker's host name or address")
        return self

    @model_validator(mode="after")
    def _at_least_once(self) -> MqttSettings:
        """An event leaves the outbox only on a PUBACK with reason Success, so only QoS 1 keeps that
        promise (the error says why the others can't); its retries' duplicates the ingest overwrites.
        Checked only with uploading on: an older file's qos must not stop a kiosk that doesn't upload."""
        if self.enabled and self.qos != 1:
            raise ValueError(
                "mqtt.qos must be 1: the uplink needs the broker's PUBACK to know an event arrived (QoS 0 has "
                "none and loses events sent while offline; with QoS 2 events nobody receives would count as sent)"
            )
        return self


class LoggingSettings(Section):
    # In any case, as logging's own names are written both ways ("debug" was refused).
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
    format: Literal["auto", "text", "json"] = Field(
        "auto", description="auto: text on a terminal, json otherwise (the journal, a pipe, a file)"
    )


def _safe_device_id(hostname: str) -> str:
    """A hostname made fit for an MQTT topic level and the event schema."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname).strip("-")[:64]
    return cleaned or "moodtunes"


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("moodtunes", appauthor=False))


class Settings(BaseSettings):
    """All of moodtunes' settings. Unknown keys are errors, so typos never pass silently."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: UserPath = Field(default_factory=_default_data_dir)
    forget_ledger_dir: UserPath | None = Field(
        None, description="where the marks of the profiles forgotten here are kept, outside data_dir: a copy of "
        "the database from before a forget, restored, has them forgotten again; default: beside data_dir, named "
        "after it with -forgotten (/var/lib/moodtunes-forgotten on the Pi)")
    device_id: str = Field(
        default_factory=lambda: _safe_device_id(socket.gethostname()),
        min_length=1, max_length=MAX_DEVICE_ID_LENGTH, pattern=DEVICE_ID_PATTERN,
        description="names this device in MQTT topics and events",
    )
    camera: CameraSettings = Field(default_factory=CameraSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    emotion: EmotionSettings = Field(default_factory=EmotionSettings)
    library: LibrarySettings = Field(default_factory=LibrarySettings)
    kiosk: KioskSettings = Field(default_factory=KioskSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    _mqtt_problem: str | None = PrivateAttr(None)
    _uploading_meant: bool = PrivateAttr(False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        if _mqtt_set_aside.get() and isinstance(env_settings, EnvSettingsSource):
            env_settings.env_vars = {name: value for name, value in env_settings.env_vars.items()
                                     if not _names_mqtt(name)}
        return env_settings, init_settings

    @property
    def database_path(self) -> Path:
        return self.data_dir / "moodtunes.db"

    @property
    def forget_ledger_folder(self) -> Path:
        """The forget ledger's folder, as set or beside the data dir (the tests' and the demo's in
        their own folders)."""
        return self.forget_ledger_dir or self.data_dir.with_name(f"{self.data_dir.name}-forgotten")

    @model_validator(mode="after")
    def _ledger_outside_the_data_dir(self) -> Settings:
        """A backup of the data dir would hold the ledger too, and restored, take its forgets back with it."""
        if self.forget_ledger_dir is not None and self.forget_ledger_dir.is_relative_to(self.data_dir):
            raise ValueError(f"forget_ledger_dir {self.forget_ledger_dir} is inside data_dir {self.data_dir}: it must "
                             "be outside it, or a restored backup of the data dir takes the forgets back with it")
        return self

    @property
    def mqtt_problem(self) -> str | None:
        """The mistake in [mqtt] that loading set aside (``mqtt_needed=False``), as one line; the
        section then has its defaults (uploading off). None when there was none."""
        return self._mqtt_problem

    @property
    def may_upload(self) -> bool:
        """Whether this device's visits may reach the cloud, for what a person is told (the camera
        notice, "Forget me"): with uploading on, and with a mistake in [mqtt] where the section as
        meant turns it on (``_uploading_meant``): the mistake stops the uplink only until it is
        fixed (it then sends the visits queued meanwhile), and not an uplink started before it."""
        return self.mqtt.enabled or (self._mqtt_problem is not None and self._uploading_meant)


def _read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML, read past a UTF-8 byte-order mark: Windows Notepad starts the files it saves
    with one, which TOML does not allow ("Invalid statement" at line 1, column 1)."""
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except PermissionError:
        raise ConfigError(f"config file {path}: not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path}: is a directory") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def _set_by(loc: tuple[int | str, ...]) -> str:
    """Names the environment variable that set the key, if one did (it wins over the file)."""
    variable = ENV_PREFIX + "__".join(part for part in loc if isinstance(part, str)).upper()
    return f" (set by {variable})" if variable in os.environ else ""


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    set_by = _set_by(error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key{_closest_key(error['loc'])}{set_by}"
    problem = _plain_message(error)
    if _is_secret(key):  # a mistyped password is still a password: keep it off terminals and journals
        return f"{key}: {problem} (value not shown){set_by}"
    return f"{key}: {problem} (got {_without_secrets(error.get('input'))!r}){set_by}"


def _plain_message(error: dict[str, Any]) -> str:
    """The message our validators wrote, without the "Value error, " pydantic puts before it (a word
    of its own code, which read as part of the problem: "mqtt: Value error, mqtt.qos must be 1")."""
    message = error["msg"]
    if error["type"] == "value_error":
        return message.removeprefix("Value error, ")
    return message


def _closest_key(loc: tuple[int | str, ...]) -> str:
    """' (did you mean enabled?)' for an unknown key close to one its section has, else ''."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        section = model.model_fields.get(str(part))
        if section is None or not (isinstance(section.annotation, type) and issubclass(section.annotation, BaseModel)):
            return ""
        model = section.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _without_secrets(value: Any) -> Any:
    """``value`` with what its secret keys hold hidden, at any depth: an error about the whole mqtt
    section (its qos, or a section of the wrong type) shows the section, password and all."""
    if isinstance(value, dict):
        return {k: "(not shown)" if _is_secret(str(k)) else _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_secrets(item) for item in value]
    return value


def _undecodable_variable(exc: SettingsError) -> str:
    """The MOODTUNES_<SECTION> variable pydantic-settings could not read as JSON (it names only the field)."""
    field = re.search(r'field "(\w+)"', str(exc))
    return ENV_PREFIX + (field[1].upper() if field else "<SECTION>")


def _undecodable(exc: SettingsError) -> ConfigError:
    """One line naming the variable, and how to set its section instead."""
    name = _undecodable_variable(exc)
    return ConfigError(
        f"config error: {name}: not valid JSON ({exc.__cause__ or exc}); it must be a JSON object, "
        f"or set one key at a time as {name}__<KEY>"
    )


def _setting_variables() -> list[str]:
    """Every MOODTUNES_* variable that sets a key, without the prefix: DATA_DIR, MQTT, MQTT__HOST…"""
    names = []
    for name, field in Settings.model_fields.items():
        names.append(name.upper())
        section = field.annotation
        if isinstance(section, type) and issubclass(section, Section):
            names += [f"{name.upper()}__{key.upper()}" for key in section.model_fields]
    return names


def unknown_variables(prefix: str, known: list[str], ignore: tuple[str, ...] = ()) -> list[str]:
    """The environment's variables starting with ``prefix`` (in any case, as pydantic-settings
    reads them), not with one of ``ignore``, whose rest is none of ``known`` (upper case), each
    with the closest known name: "MOODTUNES_DATADIR (did you mean MOODTUNES_DATA_DIR?)". The device
    and the cloud ingest both check theirs this way: a typo would leave its setting at the default."""
    unknown = sorted(
        name for name in os.environ
        if name.upper().startswith(prefix) and not name.upper().startswith(ignore)
        and name.upper()[len(prefix):] not in known
    )

    def described(name: str) -> str:
        close = difflib.get_close_matches(name.upper()[len(prefix):], known, n=1)
        return f"{name} (did you mean {prefix}{close[0]}?)" if close else name

    return [described(name) for name in unknown]


def _unknown_variable_names() -> list[str]:
    """The MOODTUNES_* variables that nothing reads, each with the closest known one."""
    known = [*_setting_variables(), *(name[len(ENV_PREFIX):] for name in OTHER_VARIABLES)]
    return unknown_variables(ENV_PREFIX, known, OTHER_PREFIXES)


def _unknown_variables_error(unknown: list[str]) -> str:
    plural = "s" if len(unknown) > 1 else ""
    return (f"config error: unknown environment variable{plural} {', '.join(unknown)}; "
            f"settings are {ENV_PREFIX}<KEY> or {ENV_PREFIX}<SECTION>__<KEY> (provisioning/moodtunes.example.toml)")


def _warn_of_a_readable_password(config: Path | None, values: dict[str, Any]) -> None:
    """The MQTT password belongs in the uplink's environment (/etc/moodtunes/uplink.env, root's
    alone): in moodtunes.toml (0640, group moodtunes) the kiosk and the scan can read it."""
    section = values.get("mqtt")
    if config is None or not isinstance(section, dict) or "password" not in section:
        return
    mode = config.stat().st_mode & 0o777
    if mode & 0o044:
        logger.warning("%s holds mqtt.password and other users may read it (mode %04o): the kiosk and the library "
                       "scan can; put it in the uplink's environment instead (MOODTUNES_MQTT__PASSWORD in "
                       "/etc/moodtunes/uplink.env, README)", config, mode)


def _warn_of_a_readable_uplink_secret() -> None:
    """The installer makes the uplink's password file root's alone (0600), but a file made again
    after it (`sudo tee`, `sudo cp` under the usual umask) is 0644: every user of the Pi could read
    the password, and nothing said so. Only its mode is looked at: the kiosk and the scan can't
    even see the file (their units' InaccessiblePaths=)."""
    try:
        status = UPLINK_SECRETS.stat()
    except OSError:
        return  # none (not the appliance), or hidden from this service
    mode = status.st_mode & 0o777
    if mode & 0o044 or status.st_uid != 0:  # systemd reads it as root: nobody else needs to
        who = f"mode {mode:04o}" if mode & 0o044 else f"owned by uid {status.st_uid}"
        logger.warning("%s holds the MQTT password and other users may read it (%s): run sudo chown root:root "
                       "%s; sudo chmod 600 %s", UPLINK_SECRETS, who, UPLINK_SECRETS, UPLINK_SECRETS)


UPLINK_PASSWORD_VARIABLE = f"{ENV_PREFIX}MQTT__PASSWORD"


def _gives_a_password(section_json: str) -> bool:
    try:
        section = json.loads(section_json)
    except ValueError:
        return False  # not read as settings either: the error says so
    return isinstance(section, dict) and any(str(key).lower() == "password" for key in section)


def _warn_of_a_password_outside_the_uplinks_variable() -> None:
    """Only MOODTUNES_MQTT__PASSWORD, spelled so, is kept out of the kiosk and the library scan (the
    installer moves it to the uplink's /etc/moodtunes/uplink.env, their units unset it): given in
    another form the settings take (inside MOODTUNES_MQTT's JSON, or the name in another case) in
    /etc/moodtunes/env, which every service reads, it reaches them."""
    for name, value in os.environ.items():
        if (name.upper() == UPLINK_PASSWORD_VARIABLE and name != UPLINK_PASSWORD_VARIABLE
                or name.upper() == f"{ENV_PREFIX}MQTT" and _gives_a_password(value)):
            logger.warning("%s gives the MQTT password, and only %s, spelled so, is kept from the kiosk and the "
                           "library scan: in /etc/moodtunes/env they can read it; set it as %s in "
                           "/etc/moodtunes/uplink.env instead (README)", name, UPLINK_PASSWORD_VARIABLE,
                           UPLINK_PASSWORD_VARIABLE)


def load_settings(config: Path | None = None, *, mqtt_needed: bool = True) -> Settings:
    """Read settings from ``config`` (else MOODTUNES_CONFIG, else /etc/moodtunes/moodtunes.toml if
    present) with environment overrides; raise ConfigError with one readable line on any problem.

    Without ``mqtt_needed`` (a command that sends nothing), a mistake only in [mqtt] or in the
    MOODTUNES_MQTT* variables is no error: the settings have that section's defaults (uploading
    off) and say the mistake (``mqtt_problem``). The kiosk's screen stayed dark over one."""
    unknown = _unknown_variable_names()
    if unknown and (mqtt_needed or not all(map(_names_mqtt, unknown))):
        raise ConfigError(_unknown_variables_error(unknown))
    mqtt_problems = [_unknown_variables_error(unknown)] if unknown else []  # all MOODTUNES_MQTT*
    named_by = ""
    if config is None and os.environ.get(f"{ENV_PREFIX}CONFIG"):
        config, named_by = Path(os.environ[f"{ENV_PREFIX}CONFIG"]), f" (named by {ENV_PREFIX}CONFIG)"
    if config is None and SYSTEM_CONFIG.is_file():
        config = SYSTEM_CONFIG
    try:
        values = _read_toml(config) if config is not None else {}
    except ConfigError as exc:
        raise ConfigError(f"{exc}{named_by}") from None
    _warn_of_a_readable_password(config, values)
    _warn_of_a_readable_uplink_secret()
    _warn_of_a_password_outside_the_uplinks_variable()
    if config == SYSTEM_CONFIG:
        # The appliance's: its services and the commands staff run (as any user) share one data dir.
        # Following $HOME, a moodtunes.toml without data_dir gave each its own: the kiosk's home is
        # /var/lib/moodtunes, the uplink's none.
        values.setdefault("data_dir", str(SYSTEM_DATA_DIR))
    folder = _relative_to.set(config.parent.absolute() if config is not None else None)
    try:
        settings = _validated(values, config, mqtt_needed, mqtt_problems)
    finally:
        _relative_to.reset(folder)
    if mqtt_problems:
        settings._mqtt_problem = "; ".join(mqtt_problems)
        settings._uploading_meant = _uploading_meant(values.get("mqtt"))
    return settings


def _validated(values: dict[str, Any], config: Path | None, mqtt_needed: bool, mqtt_problems: list[str]) -> Settings:
    """Settings from the file's ``values`` and the environment, read without [mqtt] and its
    variables once ``mqtt_problems`` holds a mistake there; one found now, unless ``mqtt_needed``,
    joins them, and they are read again without it."""
    set_aside = _mqtt_set_aside.set(bool(mqtt_problems))
    try:
        return Settings(**{key: value for key, value in values.items() if not (mqtt_problems and key == "mqtt")})
    except ValidationError as exc:
        origin = f" in {config}" if config is not None else ""
        errors = exc.errors()
        problem = f"config error{origin}: {'; '.join(_describe(e) for e in errors)}"
        if mqtt_needed or mqtt_problems or any(e["loc"][:1] != ("mqtt",) for e in errors):
            raise ConfigError(problem) from None
    except SettingsError as exc:
        if mqtt_needed or mqtt_problems or not _names_mqtt(_undecodable_variable(exc)):
            raise _undecodable(exc) from None
        problem = str(_undecodable(exc))
    finally:
        _mqtt_set_aside.reset(set_aside)
    mqtt_problems.append(problem)
    return _validated(values, config, mqtt_needed, mqtt_problems)


_BOOLEAN = TypeAdapter(bool)


def _reads_as_on(value: Any) -> bool:
    """Whether an ``enabled`` value turns uploading on, as the settings read it (true, "yes", 1…);
    one they can't read (``enabled = 2``) counts as on, to be safe (see _uploading_meant)."""
    try:
        return _BOOLEAN.validate_python(value)
    except ValidationError:
        return True


def _meant_as(name: str, known: list[str], meant: str) -> bool:
    """Whether an unknown key or variable ``name`` is a misspelling of ``meant``, as the error says it."""
    return difflib.get_close_matches(name, known, n=1) == [meant]


def _enabled_in(section: Any) -> bool | None:
    """What an [mqtt] section (the file's, or MOODTUNES_MQTT's JSON) says of uploading; None when
    it says nothing of it. One that is no table, or spells ``enabled`` wrong (``enabeld = true``),
    says on (see _uploading_meant)."""
    if not isinstance(section, dict):
        return True
    keys = list(MqttSettings.model_fields)
    if any(_meant_as(str(key), keys, "enabled") for key in section if key not in keys):
        return True
    return _reads_as_on(section["enabled"]) if "enabled" in section else None


def _uploading_meant(file_section: Any) -> bool:
    """Whether the [mqtt] that loading set aside over a mistake was meant to turn uploading on: the
    last word on ``enabled`` of the file's section, MOODTUNES_MQTT, MOODTUNES_MQTT__ENABLED (each
    overriding the one before, as in the settings) and a variable misspelling that one; off when
    none says anything of it (a stray MOODTUNES_MQTT_HOST on a device that never uploads).
    What can't be read counts as on, to be safe: the operator may have meant it, and a visitor
    told that their visit may be sent is misled less than one told nothing while it goes."""
    variables = {name.upper()[len(ENV_PREFIX):]: value for name, value in os.environ.items() if _names_mqtt(name)}
    said = [None if file_section is None else _enabled_in(file_section)]
    if "MQTT" in variables:
        try:
            said.append(_enabled_in(json.loads(variables["MQTT"])))
        except ValueError:
            said.append(True)
    if "MQTT__ENABLED" in variables:
        said.append(_reads_as_on(variables["MQTT__ENABLED"]))
    known = _setting_variables()
    if any(_meant_as(name, known, "MQTT__ENABLED") for name in variables if name not in known):
        said.append(True)
    return next((reading for reading in reversed(said) if reading is not None), False)
