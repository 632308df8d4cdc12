"""The [alerts], [heartbeat] and [retention] sections: validated when the settings load, every bad
value named by its dotted key with what is accepted."""

from __future__ import annotations

import pytest

from hydra_engine.config import ConfigError, load_settings
from hydra_engine.operations.settings import AlertSettings, HeartbeatSettings, RetentionSettings


@pytest.mark.parametrize("key, value, words", [
    ("alerts.command", "notify-send HYDRA", "as a list"),
    ("alerts.command", ["notify-send", ""], "non-empty string"),
    ("alerts.webhook", "ftp://example.com/x", "http:// or https://"),
    ("alerts.webhook", "http://", "with a host"),
    ("alerts.kinds", ["cycle_failed", "typo"], "'typo' is not an alert kind; known kinds: approval_needed"),
    ("alerts.min_interval_s", -1, "between 0.0 and 86400.0"),
    ("alerts.disconnect_after_min", 0, "between 0.01 and 10080.0"),
    ("alerts.webhook_timeout_s", 1000, "between 0.5 and 120.0"),
    ("alerts.command_timeout", 5, "unknown key; known keys: command, command_timeout_s"),
    ("heartbeat.interval_s", 0, "between 0.05 and 3600.0"),
    ("retention.models_keep", -1, "between 0 and 100000"),
    ("retention.backups_keep", 0, "between 1 and 100"),
    ("retention.vacuum_every_days", "weekly", "must be a whole number"),
])
def test_bad_values_name_the_key_and_the_range(key: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        load_settings(None, {key: value})
    assert err.value.key == key.split(".")[0] + "." + key.split(".")[1]


def test_good_sections_load_typed() -> None:
    s = load_settings(None, {"alerts.command": ["notify-send", "HYDRA"], "alerts.webhook": "http://127.0.0.1:9000/hook",
                             "alerts.kinds": "breaker_tripped,disconnected", "heartbeat.interval_s": 30,
                             "retention.models_keep": 4})
    a = s.section("alerts", AlertSettings)
    assert a.command == ("notify-send", "HYDRA") and a.kinds == ("breaker_tripped", "disconnected")
    assert s.section("heartbeat", HeartbeatSettings).interval_s == 30.0
    assert s.section("retention", RetentionSettings).models_keep == 4
    defaults = load_settings(None).section("alerts", AlertSettings)
    assert defaults.command == () and defaults.webhook == "" and len(defaults.kinds) == 10
