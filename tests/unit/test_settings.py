from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting_with_its_default() -> None:
    listed = dict(re.findall(r"^# ([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), flags=re.M))
    defaults = Settings()
    for field in msgspec.structs.fields(Settings):
        name = field.name.upper()
        assert name in listed, f"{name} is missing from .env.example"
        value = getattr(defaults, field.name)
        if listed[name] != "":
            assert msgspec.convert(listed[name], type(value), strict=False) == value, name
        else:
            assert value == "", name


def test_values_come_from_the_environment_typed() -> None:
    settings = Settings.from_env(
        {"POLL_INTERVAL_S": "0.5", "PORT": "9000", "API_KEYS": "a, b,,c", "IGNORED": "x"}
    )
    assert settings.poll_interval_s == 0.5 and settings.port == 9000
    assert settings.api_key_set == {"a", "b", "c"}


def test_bad_values_fail_at_start_with_the_setting_named() -> None:
    with pytest.raises(msgspec.ValidationError, match="port"):
        Settings.from_env({"PORT": "eighty"})


def test_backend_host_is_always_a_media_host() -> None:
    settings = Settings.from_env({"SORA_BACKEND_URL": "http://127.0.0.1:8765/backend"})
    assert {"127.0.0.1", "videos.openai.com"} <= settings.media_hosts
