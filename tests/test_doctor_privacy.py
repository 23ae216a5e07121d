"""`moodtunes doctor` and privacy: its camera check opens no camera unless asked (`--camera`), and it
warns when uploads would cross the network unencrypted."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import types
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool
from moodtunes.cli import main
from moodtunes.commands import doctor
from moodtunes.config import load_settings


@pytest.fixture
def camera_opens(monkeypatch) -> list[str]:
    """Every source open_camera is asked to open (it returns a one-frame stand-in)."""
    import moodtunes.vision
    from moodtunes.vision.camera import ReplayCamera

    opened: list[str] = []

    def fake_open_camera(spec, width=640, height=480, fps=30, **_):
        opened.append(spec)
        return ReplayCamera.from_frames([np.zeros((height, width, 3), np.uint8)], spec)

    monkeypatch.setattr(moodtunes.vision, "open_camera", fake_open_camera)
    monkeypatch.setattr(moodtunes.vision.camera, "open_camera", fake_open_camera)
    return opened


def _checks(capsys) -> dict[str, dict]:
    return {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}


def _fake_picamera2(monkeypatch, cameras: list[dict]) -> None:
    """A picamera2 whose camera list is ``cameras`` and whose camera must never be opened."""
    class Picamera2:
        @staticmethod
        def global_camera_info() -> list[dict]:
            return cameras

        def __init__(self, *args, **kwargs):
            raise AssertionError("doctor opened the Raspberry Pi camera")

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))


def test_doctor_does_not_open_the_camera_by_default(capsys, monkeypatch, camera_opens):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", "sample")
    main(["doctor", "--json"])
    camera = _checks(capsys)["camera"]
    assert camera_opens == []
    assert camera["status"] == "ok" and "not opened" in camera["detail"] and "doctor --camera" in camera["detail"]


def test_doctor_camera_option_reads_one_frame_and_keeps_nothing(capsys, monkeypatch, camera_opens):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", "sample")
    main(["doctor", "--json", "--camera"])
    camera = _checks(capsys)["camera"]
    assert camera_opens == ["sample"]
    assert camera["status"] == "ok" and camera["detail"] == "sample: a 640x480 frame read (not kept)"


def test_doctor_camera_option_reports_a_camera_that_does_not_open(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", f"replay:{tmp_path / 'broken.png'}")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    main(["doctor", "--json"])
    assert _checks(capsys)["camera"]["status"] == "ok"  # the file is there; it is not read
    main(["doctor", "--json", "--camera"])
    camera = _checks(capsys)["camera"]
    assert camera["status"] == "warn" and "not a readable image" in camera["detail"]


def test_the_raspberry_pi_camera_is_listed_not_opened(monkeypatch, camera_opens):
    _fake_picamera2(monkeypatch, [{"Model": "imx708", "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a"}])
    for source in ("picamera2", "auto"):
        monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", source)
        check = doctor._camera(load_settings())
        assert check.status == "ok" and "Raspberry Pi camera found (imx708)" in check.detail, check
    assert camera_opens == []


def test_no_raspberry_pi_camera_is_a_warning(monkeypatch, camera_opens):
    _fake_picamera2(monkeypatch, [])
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", "picamera2")
    check = doctor._camera(load_settings())
    assert check.status == "warn" and "no Raspberry Pi camera found" in check.detail
    assert "manual mood picker" in check.detail
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails: not installed
    check = doctor._camera(load_settings())
    assert check.status == "warn" and "picamera2 is not installed" in check.detail
    assert camera_opens == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="webcams are looked for in /dev")
def test_a_missing_webcam_is_found_missing_without_opening_it(monkeypatch, camera_opens):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", "opencv:63")
    check = doctor._camera(load_settings())
    assert check.status == "warn" and "no webcam at /dev/video63" in check.detail
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(doctor, "_webcam_presence", lambda index: (f"no webcam at /dev/video{index}", ""))
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", "auto")
    check = doctor._camera(load_settings())
    assert check.status == "warn" and "no camera found" in check.detail and "picamera2 is not installed" in check.detail
    assert camera_opens == []


def test_replay_sources_are_checked_on_disk(monkeypatch, tmp_path, camera_opens):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", f"replay:{empty}")
    check = doctor._camera(load_settings())
    assert check.status == "warn" and "no images in this folder" in check.detail
    (empty / "face.jpg").write_bytes(b"\xff\xd8")
    assert doctor._camera(load_settings()).status == "ok"
    assert camera_opens == []


# --- the broker -------------------------------------------------------------------------------


@pytest.fixture
def broker_answers(monkeypatch) -> None:
    """Every broker is reachable, and nothing leaves this machine."""
    monkeypatch.setattr(doctor.socket, "create_connection", lambda *a, **k: nullcontext())
    monkeypatch.setattr(doctor, "_tls_problem", lambda *a: None)


def _mqtt(monkeypatch, host: str, *, password: bool = True, tls: bool = False) -> doctor.Check:
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__HOST", host)
    monkeypatch.setenv("MOODTUNES_MQTT__TLS", "true" if tls else "false")
    if password:
        monkeypatch.setenv("MOODTUNES_MQTT__PASSWORD", "s3cret")
    return doctor._mqtt(load_settings())


def test_a_password_sent_in_clear_text_is_a_warning(monkeypatch, broker_answers):
    check = _mqtt(monkeypatch, "192.0.2.10")
    assert check.status == "warn"
    assert "the MQTT password and every visit would cross the network unencrypted" in check.detail
    assert "mqtt.tls = true" in check.detail and "s3cret" not in check.detail


def test_visits_sent_in_clear_text_are_a_warning_even_without_a_password(monkeypatch, broker_answers):
    check = _mqtt(monkeypatch, "192.0.2.10", password=False)
    assert check.status == "warn" and "every visit would cross the network unencrypted" in check.detail
    assert "password" not in check.detail


def test_a_user_name_says_a_password_goes_too_where_doctor_cant_read_it(monkeypatch, broker_answers):
    """doctor runs without the uplink's password file (root's alone): it said "every visit" only."""
    monkeypatch.setenv("MOODTUNES_MQTT__USERNAME", "kiosk-1")
    check = _mqtt(monkeypatch, "192.0.2.10", password=False)
    assert "the MQTT password and every visit would cross the network unencrypted" in check.detail


def test_the_uplink_warns_in_its_log_when_it_would_send_in_clear_text_to_another_machine(caplog):
    from moodtunes.config import MqttSettings
    from moodtunes.uplink import BrokerLink

    for host, warned in (("192.0.2.10", True), ("127.0.0.1", False)):
        caplog.clear()
        BrokerLink(MqttSettings(enabled=True, host=host, username="kiosk-1", password="s3cret"), "kiosk-1")
        said = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
        assert ("the MQTT password and every visit cross the network unencrypted" in said) == warned, host
        assert "s3cret" not in said


def test_tls_or_a_broker_on_this_machine_is_fine(monkeypatch, broker_answers):
    assert _mqtt(monkeypatch, "192.0.2.10", tls=True).status == "ok"
    for host in ("localhost", "127.0.0.1", "::1", "[::1]", "127.0.1.1"):
        check = _mqtt(monkeypatch, host)
        assert check.status == "ok", (host, check)


def test_a_name_is_judged_by_the_addresses_it_resolves_to(monkeypatch, broker_answers):
    def resolving_to(address):
        return lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0))]

    monkeypatch.setattr(doctor.socket, "getaddrinfo", resolving_to("127.0.0.1"))
    assert _mqtt(monkeypatch, "broker.lan").status == "ok"
    monkeypatch.setattr(doctor.socket, "getaddrinfo", resolving_to("10.0.0.5"))
    assert _mqtt(monkeypatch, "broker.lan").status == "warn"

    def unresolvable(*a, **k):
        raise socket.gaierror("no such host")

    monkeypatch.setattr(doctor.socket, "getaddrinfo", unresolvable)
    assert _mqtt(monkeypatch, "broker.lan").status == "warn"


def test_an_unreachable_broker_also_says_it_would_be_clear_text(monkeypatch):
    def refused(*a, **k):
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(doctor.socket, "create_connection", refused)
    check = _mqtt(monkeypatch, "192.0.2.10")
    assert check.status == "warn" and "unreachable" in check.detail and "unencrypted" in check.detail


def test_doctor_help_offers_the_camera_option(capsys):
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert "--camera" in capsys.readouterr().out


# ---- TLS, against real listeners: the uplink would fail where doctor said "reachable" ---------

@pytest.fixture
def tls_broker(tmp_path):
    """A TLS listener on localhost with a self-signed certificate (which no system CA trusts):
    (its port, the certificate). It completes handshakes and closes; nothing MQTT."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(client, server_side=True):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], cert
    stop.set()
    thread.join(5)
    listener.close()


def _tls_check(monkeypatch, port: int, ca_file: Path | None) -> doctor.Check:
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__HOST", "localhost")
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", str(port))
    monkeypatch.setenv("MOODTUNES_MQTT__TLS", "true")
    if ca_file is not None:
        monkeypatch.setenv("MOODTUNES_MQTT__CA_FILE", str(ca_file))
    return doctor._mqtt(load_settings())


def test_a_broker_whose_certificate_the_ca_file_vouches_for_is_fine(monkeypatch, tls_broker):
    port, cert = tls_broker
    check = _tls_check(monkeypatch, port, cert)
    assert check.status == "ok", check


def test_a_broker_certificate_nothing_vouches_for_fails(monkeypatch, tls_broker):
    port, _ = tls_broker
    check = _tls_check(monkeypatch, port, None)  # the system's CAs only
    assert check.status == "fail" and "its certificate is not trusted" in check.detail, check


def test_a_ca_file_that_is_missing_fails(monkeypatch, tls_broker, tmp_path):
    port, _ = tls_broker
    check = _tls_check(monkeypatch, port, tmp_path / "missing.crt")
    assert check.status == "fail" and "mqtt.ca_file" in check.detail and "missing.crt" in check.detail, check


def test_tls_to_a_plain_mqtt_listener_fails(monkeypatch, mosquitto, tls_broker):
    _, cert = tls_broker
    check = _tls_check(monkeypatch, mosquitto.port, cert)
    assert check.status == "fail" and "no TLS handshake" in check.detail, check
