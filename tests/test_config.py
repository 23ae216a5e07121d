import json
import os
import re
from pathlib import Path

import pytest
from moodtunes.cli import main as moodtunes
from moodtunes.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "moodtunes.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(tmp_path):
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data"  # from the test's MOODTUNES_DATA_DIR
    assert settings.database_path == tmp_path / "data" / "moodtunes.db"
    assert settings.camera.source == "auto"
    assert settings.mqtt.enabled is False
    assert settings.vision.scan_seconds == 3.0


def test_file_values_and_environment_override(tmp_path, monkeypatch):
    config = write(tmp_path, '[camera]\nsource = "replay:/tmp/faces"\n[mqtt]\nenabled = true\nport = 1999\n')
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", "2000")
    settings = load_settings(config)
    assert settings.camera.source == "replay:/tmp/faces"
    assert settings.mqtt.enabled is True
    assert settings.mqtt.port == 2000


def test_config_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MOODTUNES_CONFIG", str(write(tmp_path, "[kiosk]\nwidth = 1024\n")))
    assert load_settings().kiosk.width == 1024


def test_example_config_is_valid_and_complete(monkeypatch):
    monkeypatch.delenv("MOODTUNES_DATA_DIR")
    example = Path(__file__).resolve().parents[1] / "provisioning" / "moodtunes.example.toml"
    settings = load_settings(example)
    assert str(settings.data_dir) == "/var/lib/moodtunes"
    text = example.read_text()
    for section in ("camera", "vision", "emotion", "library", "kiosk", "mqtt", "logging"):
        for key in type(getattr(settings, section)).model_fields:
            assert f"{key} =" in text, f"example config lacks {section}.{key}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[camera]\nsorce = 'auto'\n", "camera.sorce: unknown key"),
        ("[nosuchsection]\nx = 1\n", "nosuchsection: unknown key"),
        ("[mqtt]\nport = 'abc'\n", "mqtt.port: Input should be a valid integer"),
        ("[vision]\nscan_seconds = -1\n", "vision.scan_seconds: Input should be greater than 0"),
        ("[camera\nsource = 1\n", "invalid TOML"),
        ("[kiosk]\nidle_timeout_s = true\n", "kiosk.idle_timeout_s: must be a number, not true or false"),
        ("[kiosk]\nvolume = true\n", "kiosk.volume: must be a number"),
        ("[kiosk]\nsleep_after_s = -1\n", "kiosk.sleep_after_s: Input should be greater than or equal to 0"),
        ("[mqtt]\nkeep_sent_days = -1\n", "mqtt.keep_sent_days: Input should be greater than or equal to 0"),
        ("[mqtt]\nkeep_sent_days = 0.5\n", "mqtt.keep_sent_days: Input should be a valid integer"),
        # now minus a million days is before the year 1: the uplink service's every turn raised
        ("[mqtt]\nkeep_sent_days = 1000000\n", "mqtt.keep_sent_days: Input should be less than or equal to 36500"),
        ("[mqtt]\nport = true\n", "mqtt.port: must be a number"),
        ("[camera]\nsource = 'webcam'\n", "camera.source: must be auto, picamera2, opencv:N"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_sent_payloads_are_kept_90_days_unless_told_otherwise_and_0_keeps_them_for_good(tmp_path):
    assert load_settings(write(tmp_path, "")).mqtt.keep_sent_days == 90
    assert load_settings(write(tmp_path, "[mqtt]\nkeep_sent_days = 0\n")).mqtt.keep_sent_days == 0


BYTE_ORDER_MARK = "\ufeff".encode()


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    """Windows Notepad starts a UTF-8 file with a byte-order mark: the kiosk refused such a file,
    "invalid TOML: Invalid statement (at line 1, column 1)"."""
    config = tmp_path / "moodtunes.toml"
    config.write_bytes(BYTE_ORDER_MARK + b"[kiosk]\nwidth = 1024\n")
    assert load_settings(config).kiosk.width == 1024


def test_doctor_reads_a_config_saved_with_a_byte_order_mark(tmp_path, capsys):
    config = tmp_path / "moodtunes.toml"
    config.write_bytes(BYTE_ORDER_MARK + f'[library]\npaths = ["{tmp_path / "bom-music"}"]\n'.encode())
    assert moodtunes(["--config", str(config), "doctor", "--json"]) in (0, 1)  # 2: the config refused
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert "bom-music" in checks["music model"]["detail"]


@pytest.mark.parametrize("qos", [0, 2])
def test_only_qos_1_is_accepted_for_uploads_and_the_error_says_why(tmp_path, qos):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, f"[mqtt]\nenabled = true\nqos = {qos}\n"))
    assert "mqtt: mqtt.qos must be 1: the uplink needs the broker's PUBACK" in str(info.value)


def test_an_old_qos_doesnt_stop_a_kiosk_that_doesnt_upload(tmp_path):
    """An upgrade keeps /etc/moodtunes/moodtunes.toml: a qos it no longer accepts must not crash-loop
    the kiosk while uploading is off."""
    assert load_settings(write(tmp_path, "[mqtt]\nenabled = false\nqos = 2\n")).mqtt.qos == 2


def test_qos_1_in_existing_files_and_the_environment_still_loads(tmp_path, monkeypatch):
    assert load_settings(write(tmp_path, "[mqtt]\nqos = 1\n")).mqtt.qos == 1
    monkeypatch.setenv("MOODTUNES_MQTT__QOS", "1")
    assert load_settings().mqtt.qos == 1


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path, capsys):
    config = write(tmp_path, "[mqtt]\nusername = 'kiosk'\npassword = 31415926\n")
    assert moodtunes(["--config", str(config), "uplink", "--once"]) == 2
    err = capsys.readouterr().err
    assert "mqtt.password: Input should be a valid string (value not shown)" in err
    assert "31415926" not in err


@pytest.mark.parametrize("config", [
    "[mqtt]\nenabled = true\nqos = 0\npassword = 'hunter2'\n",  # the qos error shows the whole section
    "[[mqtt]]\npassword = 'hunter2'\n",  # a section of the wrong type
    "mqtt = [{ nested = { token = 'hunter2' } }]\n",
])
def test_a_secret_in_a_section_an_error_shows_is_not_echoed(tmp_path, capsys, config):
    assert moodtunes(["--config", str(write(tmp_path, config)), "uplink", "--once"]) == 2
    err = capsys.readouterr().err
    assert ": mqtt: " in err and "(not shown)" in err and "hunter2" not in err


def test_a_secret_set_in_the_environment_is_not_echoed_with_its_section(monkeypatch, capsys):
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__QOS", "0")
    monkeypatch.setenv("MOODTUNES_MQTT__PASSWORD", "hunter2")
    assert moodtunes(["uplink", "--once"]) == 2
    err = capsys.readouterr().err
    assert "mqtt.qos must be 1" in err and "hunter2" not in err


def test_bad_environment_value_names_the_key(monkeypatch):
    monkeypatch.setenv("MOODTUNES_KIOSK__WIDTH", "wide")
    with pytest.raises(ConfigError, match="kiosk.width"):
        load_settings()


def test_a_screen_too_small_for_48_px_touch_targets_is_refused(monkeypatch):
    """480x320 panels: a keyboard row or a page of songs can't have 48 px targets there."""
    monkeypatch.setenv("MOODTUNES_KIOSK__WIDTH", "480")
    monkeypatch.setenv("MOODTUNES_KIOSK__HEIGHT", "800")
    assert (load_settings().kiosk.width, load_settings().kiosk.height) == (480, 800)
    monkeypatch.setenv("MOODTUNES_KIOSK__HEIGHT", "320")
    with pytest.raises(ConfigError, match=r"kiosk.height: Input should be greater than or equal to 480"):
        load_settings()


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/home/pi/Music", ["/home/pi/Music"]),
        (f"/music{os.pathsep}/more music", ["/music", "/more music"]),
        ('["/music", "/more"]', ["/music", "/more"]),
        ("", []),
    ],
)
def test_library_paths_from_the_environment_as_a_folder_a_list_or_json(monkeypatch, value, expected):
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", value)
    assert load_settings().library.paths == [Path(p) for p in expected]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MOODTUNES_LIBRARY__PATHS", '["/music"', [
            "library.paths: not a valid JSON list",
            f'give folders as ["/music", "/more"] or as /music{os.pathsep}/more',
            "(set by MOODTUNES_LIBRARY__PATHS)",
        ]),
        ("MOODTUNES_LIBRARY", "/music", [
            "MOODTUNES_LIBRARY: not valid JSON", "it must be a JSON object",
            "set one key at a time as MOODTUNES_LIBRARY__<KEY>",
        ]),
    ],
)
def test_an_undecodable_environment_value_is_one_line_naming_the_variable(monkeypatch, capsys, variable, value,
                                                                          expected):
    monkeypatch.setenv(variable, value)
    assert moodtunes(["uplink", "--once"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for part in expected:
        assert part in err


def test_numbers_from_the_environment_still_load(monkeypatch):
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", "1")
    monkeypatch.setenv("MOODTUNES_KIOSK__IDLE_TIMEOUT_S", "1")
    settings = load_settings()
    assert settings.mqtt.port == 1 and settings.kiosk.idle_timeout_s == 1.0


@pytest.mark.parametrize("source", ["auto", "picamera2", "sample", " Sample ", "opencv", "OpenCV:1", "replay:/tmp/x"])
def test_every_camera_source_open_camera_knows_loads(monkeypatch, source):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", source)
    assert load_settings().camera.source == source


@pytest.mark.parametrize("source", ["webcam", "opencv:x", "opencv:-1", "replay:", "", "picamera"])
def test_a_mistyped_camera_source_stops_the_start(monkeypatch, capsys, source):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", source)
    assert moodtunes(["uplink", "--once"]) == 2
    err = capsys.readouterr().err
    assert "camera.source: must be auto" in err and err.count("\n") == 1
    assert err.strip().endswith(f"(got {source!r}) (set by MOODTUNES_CAMERA__SOURCE)")


@pytest.mark.parametrize(
    ("variable", "close"),
    [
        ("MOODTUNES_MQTT_ENABLED", "MOODTUNES_MQTT__ENABLED"),  # one underscore: upload stayed off, rc 0
        ("MOODTUNES_DATADIR", "MOODTUNES_DATA_DIR"),  # the default data dir was used without a word
        ("MOODTUNES_MQTT__HSOT", "MOODTUNES_MQTT__HOST"),
        ("moodtunes_kiosk__widht", "MOODTUNES_KIOSK__WIDTH"),  # pydantic-settings reads any case
        ("MOODTUNES_CONFIG_FILE", "MOODTUNES_CONFIG"),
    ],
)
def test_a_mistyped_environment_variable_stops_the_start_naming_the_close_match(monkeypatch, capsys, variable,
                                                                                  close):
    monkeypatch.setenv(variable, "true")
    assert moodtunes(["uplink", "--once"]) == 2
    err = capsys.readouterr().err
    assert f"unknown environment variable {variable} (did you mean {close}?)" in err and err.count("\n") == 1


def test_every_unknown_variable_is_named_at_once(monkeypatch):
    monkeypatch.setenv("MOODTUNES_NOTHING_LIKE_IT", "1")
    monkeypatch.setenv("MOODTUNES_DATADIR", "/x")
    with pytest.raises(ConfigError, match=r"variables MOODTUNES_DATADIR \(did you mean MOODTUNES_DATA_DIR\?\), "
                                          r"MOODTUNES_NOTHING_LIKE_IT;"):
        load_settings()


def test_variables_other_parts_of_moodtunes_read_are_allowed(monkeypatch, tmp_path):
    """The models folder, the installer's switch, the tests' own, and the cloud ingest's settings (a
    developer's shell may hold both), which the ingest checks itself."""
    for variable in ("MOODTUNES_MODELS_DIR", "MOODTUNES_KEEP_SWAPFILE", "MOODTUNES_REQUIRE_SERVICES",
                     "MOODTUNES_TEST_ANALYSIS_LOG", "MOODTUNES_INGEST_MQTT_HOST", "MOODTUNES_INGEST_MQTT_HOTS"):
        monkeypatch.setenv(variable, str(tmp_path))
    monkeypatch.setenv("MOODTUNES_CONFIG", str(write(tmp_path, "")))
    monkeypatch.setenv("MOODTUNES_MQTT", '{"port": 1884}')
    monkeypatch.setenv("MOODTUNES_MQTT__HOST", "broker")
    settings = load_settings()
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker", 1884)


def test_every_moodtunes_variable_the_project_sets_is_accepted():
    """Units, env files and scripts set these: each must be a setting or an allowed other."""
    import re

    from moodtunes.config import OTHER_PREFIXES, OTHER_VARIABLES, _setting_variables

    repo = Path(__file__).resolve().parents[1]
    files = [*repo.glob("systemd/*"), *repo.glob("provisioning/*"), *repo.glob("cloud/*.example"),
             *repo.glob(".ci/*"), repo / "Makefile"]
    found = {name for path in files if path.is_file() for name in re.findall(r"\bMOODTUNES_[A-Z0-9_]+", path.read_text())}
    assert "MOODTUNES_KEEP_SWAPFILE" in found and "MOODTUNES_MQTT__PASSWORD" in found
    known = {f"MOODTUNES_{name}" for name in _setting_variables()} | set(OTHER_VARIABLES)
    assert {name for name in found if name not in known and not name.startswith(OTHER_PREFIXES)} == set()


@pytest.mark.parametrize("where", ["env", "file"])
def test_an_empty_data_dir_is_refused_not_the_current_folder(tmp_path, monkeypatch, where):
    """MOODTUNES_DATA_DIR="" quietly made moodtunes.db wherever the command was started."""
    if where == "env":
        monkeypatch.setenv("MOODTUNES_DATA_DIR", "")
        config = None
    else:
        monkeypatch.delenv("MOODTUNES_DATA_DIR")
        config = write(tmp_path, 'data_dir = " "\n')
    with pytest.raises(ConfigError, match="data_dir: must not be empty"):
        load_settings(config)


def test_a_home_folder_in_a_path_is_expanded_once_for_every_command(tmp_path, monkeypatch):
    """The doctor said "~/Music not found" while the scan read /root/Music."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write(tmp_path, '[library]\npaths = ["~/Music", "/srv/music"]\n[emotion]\nmodel = "~/e.tflite"\n')
    settings = load_settings(config)
    assert settings.library.paths == [tmp_path / "Music", Path("/srv/music")]
    assert settings.emotion.model == tmp_path / "e.tflite"
    monkeypatch.setenv("MOODTUNES_DATA_DIR", "~/data")
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", f"~/a{os.pathsep}~/b")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data" and settings.library.paths == [tmp_path / "a", tmp_path / "b"]


@pytest.mark.parametrize("text", ['data_dir = "~no-such-user-of-moodtunes/data"',
                                  '[library]\npaths = ["~no-such-user-of-moodtunes/Music"]',
                                  '[camera]\nsource = "replay:~no-such-user-of-moodtunes/faces"'])
def test_a_home_folder_of_no_user_is_one_line_naming_the_key(tmp_path, monkeypatch, capsys, text):
    """~NAME of no user ended every command (in a replay camera source: doctor) with pathlib's
    RuntimeError and a traceback."""
    monkeypatch.delenv("MOODTUNES_DATA_DIR")
    assert moodtunes(["--config", str(write(tmp_path, text + "\n")), "report"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "~no-such-user-of-moodtunes names no home folder here" in error
    key = {"data_dir": "data_dir: ", "[library]": "library.paths.0: ", "[camera]": "camera.source: "}[text.split()[0]]
    assert key in error


def test_the_system_config_without_a_data_dir_is_one_data_dir_for_every_user(tmp_path, monkeypatch):
    """/etc/moodtunes/moodtunes.toml without data_dir: the data dir followed $HOME, the kiosk's
    (/var/lib/moodtunes/.local/share/moodtunes), the uplink's (/nonexistent/…) and staff's apart."""
    from moodtunes import config as config_module

    monkeypatch.delenv("MOODTUNES_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    system = write(tmp_path, '[kiosk]\nvolume = 0.5\n')
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", system)
    for home in ("/var/lib/moodtunes", "/nonexistent", str(tmp_path)):
        monkeypatch.setenv("HOME", home)
        assert load_settings().data_dir == Path("/var/lib/moodtunes"), home
        assert load_settings(system).data_dir == Path("/var/lib/moodtunes"), home
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings().data_dir == tmp_path / "elsewhere"  # the environment still decides
    monkeypatch.delenv("MOODTUNES_DATA_DIR")
    other = tmp_path / "mine"
    other.mkdir()
    assert load_settings(write(other, '[kiosk]\nvolume = 0.5\n')).data_dir == tmp_path / ".local" / "share" / "moodtunes"


def test_relative_paths_in_a_config_file_are_taken_from_its_folder(tmp_path, monkeypatch):
    """`library scan` and `report` run from two folders found two databases and two libraries."""
    config = write(tmp_path, "data_dir = 'data'\n[library]\npaths = ['music', '~/Music']\n[emotion]\nmodel = '../m.tflite'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(config)
    assert settings.data_dir == tmp_path / "data"
    assert settings.library.paths == [tmp_path / "music", Path.home() / "Music"]
    assert settings.emotion.model == tmp_path / "../m.tflite"


def test_a_relative_replay_camera_path_is_taken_from_the_config_files_folder_too(tmp_path, monkeypatch):
    """The example config says a relative path is taken from its folder: a replay source's was
    taken from wherever the command or the kiosk started."""
    config = write(tmp_path, '[camera]\nsource = "Replay:faces"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings(config).camera.source == f"Replay:{tmp_path / 'faces'}"
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", "replay:~/faces")
    assert load_settings().camera.source == f"replay:{Path.home() / 'faces'}"


def test_a_relative_path_without_a_config_file_is_made_absolute_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOODTUNES_DATA_DIR", "data")
    assert load_settings().data_dir == tmp_path / "data"


@pytest.mark.parametrize("width", [479, 4097])
def test_a_kiosk_size_out_of_range_is_refused(tmp_path, width):
    with pytest.raises(ConfigError, match="kiosk.width"):
        load_settings(write(tmp_path, f"[kiosk]\nwidth = {width}\n"))


def test_an_unknown_key_in_the_file_gets_the_closest_known_one(tmp_path):
    with pytest.raises(ConfigError, match=r"mqtt.enabeld: unknown key \(did you mean enabled\?\)"):
        load_settings(write(tmp_path, "[mqtt]\nenabeld = true\n"))
    with pytest.raises(ConfigError, match=r"datadir: unknown key \(did you mean data_dir\?\)"):
        load_settings(write(tmp_path, "datadir = '/x'\n"))
    with pytest.raises(ConfigError, match=r"mqtt.zzz: unknown key;|mqtt.zzz: unknown key$"):
        load_settings(write(tmp_path, "[mqtt]\nzzz = 1\n"))


def test_a_log_level_is_read_in_any_case(monkeypatch):
    monkeypatch.setenv("MOODTUNES_LOGGING__LEVEL", "debug")
    assert load_settings().logging.level == "DEBUG"


def test_a_missing_config_file_named_by_the_environment_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("MOODTUNES_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match=r"nope.toml: not found \(named by MOODTUNES_CONFIG\)$"):
        load_settings()
    with pytest.raises(ConfigError, match=r"other.toml: not found$"):
        load_settings(tmp_path / "other.toml")


@pytest.mark.parametrize("mode, warned", [(0o640, True), (0o600, False)])
def test_an_mqtt_password_others_may_read_in_the_config_file_is_warned_of(tmp_path, caplog, mode, warned):
    """The config is the group moodtunes' to read (the kiosk's and the scan's): a password put there,
    though the README says not to, was taken without a word."""
    config = tmp_path / "moodtunes.toml"
    config.write_text('[mqtt]\nenabled = true\nhost = "127.0.0.1"\nusername = "kiosk-1"\npassword = "s3cret"\n')
    config.chmod(mode)
    with caplog.at_level("WARNING", logger="moodtunes.config"):
        assert load_settings(config).mqtt.password.get_secret_value() == "s3cret"
    said = " ".join(r.getMessage() for r in caplog.records)
    assert ("holds mqtt.password and other users may read it" in said) == warned and "s3cret" not in said


@pytest.mark.parametrize("mode, owner, warned", [
    (0o644, 0, "mode 0644"), (0o640, 0, "mode 0640"), (0o600, 0, None),
    (0o600, 1000, "owned by uid 1000"),  # copied by the admin user, then chmod'ed: theirs to read
])
def test_an_uplink_password_file_others_may_read_is_warned_of(tmp_path, monkeypatch, caplog, mode, owner, warned):
    """The installer makes /etc/moodtunes/uplink.env root's alone, but one made again after it with
    `sudo tee` is 0644: every user of the Pi could read the MQTT password, and no command said so;
    one the admin user owns, they may read whatever its mode."""
    from moodtunes import config as config_module

    secrets = tmp_path / "uplink.env"
    secrets.write_text("MOODTUNES_MQTT__PASSWORD=s3cret\n")
    secrets.chmod(mode)
    if owner != os.geteuid():
        if os.geteuid() != 0:
            pytest.skip("making a file another user's needs root")
        os.chown(secrets, owner, owner)
    monkeypatch.setattr(config_module, "UPLINK_SECRETS", secrets)
    with caplog.at_level("WARNING", logger="moodtunes.config"):
        load_settings()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert (f"{secrets} holds the MQTT password and other users may read it ({warned})" in said) == bool(warned)
    assert "s3cret" not in said and ("chmod 600" in said) == bool(warned)


@pytest.mark.parametrize("name, value, warned", [
    ("MOODTUNES_MQTT", '{"password": "s3cret", "username": "kiosk-1"}', True),  # the JSON form the settings take
    ("moodtunes_mqtt__password", "s3cret", True),  # read in any case; unset by the units only as spelled
    ("MOODTUNES_MQTT__PASSWORD", "s3cret", False),  # the uplink's own, in uplink.env
    ("MOODTUNES_MQTT", '{"username": "password-kiosk"}', False),
])
def test_an_mqtt_password_given_other_than_as_the_uplinks_variable_is_warned_of(monkeypatch, caplog, name, value,
                                                                                 warned):
    """The kiosk's and the scan's units unset MOODTUNES_MQTT__PASSWORD alone: in another form, in
    /etc/moodtunes/env, the password reached them without a word."""
    monkeypatch.setenv(name, value)
    with caplog.at_level("WARNING", logger="moodtunes.config"):
        load_settings()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert (f"{name} gives the MQTT password" in said) == warned and "s3cret" not in said


def test_the_password_warning_is_a_log_line_of_the_command(tmp_path):
    """Logged while the settings were read, before their logging was set: it came out bare, by
    Python's last-resort handler, not as the JSON line the journal gets."""
    import json
    import subprocess
    import sys

    config = tmp_path / "moodtunes.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[mqtt]\nusername = "kiosk-1"\npassword = "s3cret"\n')
    config.chmod(0o644)
    done = subprocess.run([sys.executable, "-m", "moodtunes", "--config", str(config), "report"],
                          capture_output=True, text=True, timeout=120, check=False)
    [line] = [line for line in done.stderr.splitlines() if "holds mqtt.password" in line]
    record = json.loads(line)  # not a terminal: JSON lines, as the journal gets
    assert record["level"] == "warning" and record["logger"] == "moodtunes.config" and "s3cret" not in line


# --- a mistake in [mqtt] stops only the uplink -------------------------------------------------
# The kiosk sends nothing: a typo in the uplink's settings left its screen dark (exit 2, which its
# unit does not restart) until someone logged in.

def logged_warnings(err: str) -> list[str]:
    """The warnings a command logged: JSON lines on stderr, which is no terminal here."""
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [record["msg"] for record in records if record["level"] == "warning"]


MQTT_MISTAKES = [  # (file, environment, what the one line names, whether uploading was meant on)
    ("[mqtt]\nenabled = true\nqos = 0\n", {}, "mqtt: mqtt.qos must be 1", True),
    ("[mqtt]\nport = 0\n", {}, "mqtt.port: Input should be greater than 0 (got 0)", False),
    # paho's bare "Invalid host." ended the service at each start (exit 1, restarted every 10 s)
    ("", {"MOODTUNES_MQTT__ENABLED": "true", "MOODTUNES_MQTT__HOST": " "}, "mqtt: mqtt.host is empty", True),
    ("[mqtt]\ntopic_prefix = 'moodtunes/#'\n", {}, "mqtt.topic_prefix: String should match pattern", False),
    ("[mqtt]\nenabeld = true\n", {}, "mqtt.enabeld: unknown key (did you mean enabled?)", True),
    ("mqtt = 'broker'\n", {}, "mqtt: Input should be a valid dictionary", True),
    ("", {"MOODTUNES_MQTT__PORT": "abc"}, "mqtt.port: Input should be a valid integer", False),
    ("", {"MOODTUNES_MQTT__HSOT": "broker"}, "MOODTUNES_MQTT__HSOT (did you mean MOODTUNES_MQTT__HOST?)", False),
    ("", {"MOODTUNES_MQTT_ENABLED": "true"}, "MOODTUNES_MQTT_ENABLED (did you mean MOODTUNES_MQTT__ENABLED?)", True),
    ("", {"MOODTUNES_MQTT": "{host: broker}"}, "MOODTUNES_MQTT: not valid JSON", True),
]


@pytest.mark.parametrize(("text", "environment", "named", "meant_on"), MQTT_MISTAKES)
def test_a_mistake_in_mqtt_leaves_uploading_off_for_a_command_that_sends_nothing(
        tmp_path, monkeypatch, capsys, text, environment, named, meant_on):
    (tmp_path / "data").mkdir()  # the test's MOODTUNES_DATA_DIR
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = write(tmp_path, f'{text}[kiosk]\nwidth = 1024\n')
    assert moodtunes(["--config", str(config), "report"]) == 0
    [warning] = logged_warnings(capsys.readouterr().err)
    assert named in warning and "report goes on without [mqtt], uploading off" in warning
    assert "`moodtunes uplink` refuses to start until it is fixed" in warning
    settings = load_settings(config, mqtt_needed=False)
    assert settings.kiosk.width == 1024  # the rest as configured
    assert settings.mqtt.enabled is False and settings.mqtt.host == "localhost"  # [mqtt] not half-read
    assert named in settings.mqtt_problem
    assert settings.may_upload is meant_on  # meant on (or unreadable): visits queued meanwhile may go later
    with pytest.raises(ConfigError, match=re.escape(named)):  # the uplink's
        load_settings(config)
    assert moodtunes(["--config", str(config), "uplink"]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1


def test_without_a_mistake_nothing_is_set_aside(tmp_path):
    settings = load_settings(write(tmp_path, "[mqtt]\nenabled = true\nhost = 'broker'\n"), mqtt_needed=False)
    assert settings.mqtt_problem is None and settings.mqtt.host == "broker" and settings.may_upload
    assert load_settings(mqtt_needed=False).may_upload is False  # uploading off, nothing set aside


@pytest.mark.parametrize(("text", "environment", "meant_on"), [
    ("[mqtt]\nenabled = false\nhots = 'broker'\n", {}, False),
    ("", {"MOODTUNES_MQTT_HOST": "broker"}, False),  # stray, on a device that never uploads
    ("[mqtt]\nenabled = true\nhots = 'broker'\n", {}, True),
    ("[mqtt]\nenabled = 'yes'\nport = 0\n", {}, True),  # as the settings read it
    ("[mqtt]\nenabled = 2\nport = 0\n", {}, True),  # unreadable: on, to be safe
    ("[mqtt]\nenabled = true\n", {"MOODTUNES_MQTT__ENABLED": "false", "MOODTUNES_MQTT__PORT": "0"}, False),
    ("[mqtt]\nenabeld = true\n", {"MOODTUNES_MQTT__ENABLED": "off"}, False),  # the variable overrides the file
    ("[mqtt]\nenabled = false\n", {"MOODTUNES_MQTT_ENABLED": "true"}, True),
    ("", {"MOODTUNES_MQTT": '{"enabled": false, "hots": "broker"}'}, False),
    ("", {"MOODTUNES_MQTT": '{"enabled": false}', "MOODTUNES_MQTT__ENABLED": "yes", "MOODTUNES_MQTT__QOS": "0"}, True),
    ("[mqtt]\nenabled = true\n", {"MOODTUNES_MQTT": '{"enabled": false}', "MOODTUNES_MQTT__HSOT": "b"}, False),
])
def test_a_mistake_in_mqtt_says_visits_may_go_only_where_uploading_was_meant_on(
        tmp_path, monkeypatch, text, environment, meant_on):
    """`enabled = false` and a misspelt key, or a stray MOODTUNES_MQTT_HOST on a device that never
    uploads, told visitors their visits went to the operator's server and made `forget` keep
    cloud keys of people nothing of whom could ever leave the device."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(write(tmp_path, text), mqtt_needed=False)
    assert settings.mqtt_problem and settings.mqtt.enabled is False
    assert settings.may_upload is meant_on


@pytest.mark.parametrize(("text", "environment", "named"), [
    ("[camera]\nsource = 'webcam'\n[mqtt]\nport = 0\n", {}, ["camera.source: must be auto", "mqtt.port"]),
    ("[mqtt]\nport = 0\n", {"MOODTUNES_DATADIR": "/x"}, ["MOODTUNES_DATADIR (did you mean"]),
    ("", {"MOODTUNES_MQTT__HSOT": "x", "MOODTUNES_KIOSK": "{width: 800}"}, ["MOODTUNES_KIOSK: not valid JSON"]),
])
def test_a_mistake_outside_mqtt_still_stops_every_command(tmp_path, monkeypatch, capsys, text, environment, named):
    """A typo in the camera source left the kiosk on the manual mood picker for good: it must stop
    the start, whatever [mqtt] holds."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert moodtunes(["--config", str(write(tmp_path, text)), "report"]) == 2
    err = capsys.readouterr().err
    assert all(words in err for words in named) and err.count("\n") == 1


@pytest.mark.parametrize("text", [
    "[mqtt]\nenabled = true\nqos = 0\npassword = 'hunter2'\n",
    "[mqtt]\nusername = 'kiosk'\npassword = 31415926\n",
    "[[mqtt]]\npassword = 'hunter2'\n",
])
def test_a_mistake_in_mqtt_set_aside_keeps_its_secrets_out_of_the_warning(tmp_path, capsys, text):
    (tmp_path / "data").mkdir()
    config = write(tmp_path, text)
    config.chmod(0o600)  # no warning of a password others may read
    assert moodtunes(["--config", str(config), "report"]) == 0
    said = capsys.readouterr().err
    [warning] = logged_warnings(said)
    assert "not shown" in warning and "hunter2" not in said and "31415926" not in said
