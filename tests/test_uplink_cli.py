"""`moodtunes uplink` without a broker: disabled, status, unreachable broker, bad TLS file, and the
pure pieces (topics, backoff, PUBACK reasons)."""

from __future__ import annotations

import pytest
from analytics_support import record_visit
from conftest import free_port
from moodtunes.cli import main as moodtunes
from moodtunes.config import load_settings
from moodtunes.store import Store
from moodtunes.uplink import BrokerLink, UplinkError, describe_puback, retry_delay, visit_topic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode


def _store(tmp_path) -> Store:
    return Store.open(tmp_path / "data" / "moodtunes.db")


def test_disabled_uplink_says_so_and_exits_cleanly(capsys):
    assert moodtunes(["uplink"]) == 0
    assert "disabled (mqtt.enabled = false)" in capsys.readouterr().out
    assert moodtunes(["uplink", "--once"]) == 0


def test_status_counts_pending_and_sent(tmp_path, capsys):
    assert moodtunes(["uplink", "--status"]) == 0
    assert "0 pending, 0 sent (no visits recorded yet)" in capsys.readouterr().out
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
        record_visit(store, "kiosk")
        first = store.pending_events(1)[0]
        store.mark_failed(first.id, "broker down")
        store.mark_sent(store.pending_events(2)[1].id)
    assert moodtunes(["uplink", "--status"]) == 0
    assert "1 pending (oldest tried 1 times), 1 sent; uplink disabled" in capsys.readouterr().out


def test_once_with_an_unreachable_broker_keeps_events_and_fails(tmp_path, monkeypatch, capsys):
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__HOST", "127.0.0.1")
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("MOODTUNES_MQTT__PASSWORD", "hunter2-secret")
    assert moodtunes(["uplink", "--once"]) == 1
    out = capsys.readouterr()
    assert "sent 0, 1 still pending: can't reach the broker at 127.0.0.1:" in out.out
    assert "hunter2" not in out.out + out.err
    with _store(tmp_path) as store:
        assert store.outbox_counts() == {"pending": 1, "sent": 0}


def test_once_with_nothing_pending_does_not_need_the_broker(monkeypatch, capsys):
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", str(free_port()))
    assert moodtunes(["uplink", "--once"]) == 0
    assert "nothing to send" in capsys.readouterr().out


def test_a_missing_tls_ca_file_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MOODTUNES_MQTT__TLS", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__CA_FILE", str(tmp_path / "missing-ca.crt"))
    settings = load_settings()
    with pytest.raises(UplinkError, match="mqtt.ca_file .*missing-ca.crt"):
        BrokerLink(settings.mqtt, settings.device_id)


def test_topics_backoff_and_puback_reasons():
    assert visit_topic("moodtunes", "kiosk-1") == "moodtunes/kiosk-1/visit"
    assert [retry_delay(n, 10, 300) for n in (1, 2, 3, 6, 20)] == [10, 20, 40, 300, 300]
    assert describe_puback(ReasonCode(PacketTypes.PUBACK, "Success"), "t") is None
    assert "nobody subscribes to t" in describe_puback(ReasonCode(PacketTypes.PUBACK, "No matching subscribers"), "t")
    assert "Not authorized" in describe_puback(ReasonCode(PacketTypes.PUBACK, "Not authorized"), "t")


@pytest.mark.parametrize("prefix", ["moodtunes/+", "#", "/moodtunes", "moodtunes/", ""])
def test_a_topic_prefix_with_wildcards_or_empty_levels_is_a_config_error(monkeypatch, capsys, prefix):
    monkeypatch.setenv("MOODTUNES_MQTT__TOPIC_PREFIX", prefix)
    assert moodtunes(["uplink", "--status"]) == 2
    assert "mqtt.topic_prefix" in capsys.readouterr().err
