"""Settings are a documented table mapped mechanically from the environment; the public API is __all__."""

from __future__ import annotations

import pytest

import pressrun
from pressrun.errors import ConfigError, PressrunError, error_body
from pressrun.settings import Settings, iter_settings_table


def test_every_setting_is_documented_and_named_mechanically():
    rows = list(iter_settings_table())
    assert len(rows) >= 10
    for name, env, _default, help_text in rows:
        if "." not in name:  # top-level settings: data_dir, database_url
            assert env == f"PRESSRUN_{name.upper()}"
        else:
            group, attr = name.split(".")
            assert env == f"PRESSRUN_{group.upper()}__{attr.upper()}"
        assert len(help_text) > 15, f"{name} has no real description"


def test_environment_overrides_nested_settings(monkeypatch):
    monkeypatch.setenv("PRESSRUN_RENDER__CONCURRENCY", "7")
    monkeypatch.setenv("PRESSRUN_RENDER__ALLOWED_HOSTS", "cdn.example.com, 127.0.0.1:8080")
    monkeypatch.setenv("PRESSRUN_TEMPLATING__LOCALE", "de_DE")
    monkeypatch.setenv("PRESSRUN_CHROMIUM_PATH", "/opt/chromium")
    settings = Settings.load(**{"render.timeout_s": 5.0, "templating.strict": None})
    assert settings.render.concurrency == 7
    assert settings.render.allowed_hosts == ["cdn.example.com", "127.0.0.1:8080"]
    assert settings.templating.locale == "de_DE"
    assert settings.templating.strict is True  # None means "not given on the command line"
    assert settings.render.timeout_s == 5.0
    assert settings.render.chromium_path == "/opt/chromium"


def test_bad_setting_names_the_variable_and_value(monkeypatch):
    monkeypatch.setenv("PRESSRUN_RENDER__CONCURRENCY", "lots")
    with pytest.raises(ConfigError) as caught:
        Settings.load()
    assert "PRESSRUN_RENDER__CONCURRENCY='lots'" in caught.value.message
    assert "integer" in caught.value.message


def test_public_api_is_exactly_all():
    assert sorted(pressrun.__all__) == sorted(
        ["OutputFormat", "PdfOptions", "PressrunError", "RenderOptions", "RenderResult", "RowError",
         "__version__", "error_body"]
    )
    for name in pressrun.__all__:
        assert hasattr(pressrun, name)


def test_error_body_never_leaks_internal_exceptions():
    assert error_body(KeyError("secret")) == {"code": "internal_error", "message": "internal error (KeyError)"}
    assert error_body(PressrunError("boom", field="x", value=None)) == {
        "code": "internal_error", "message": "boom", "field": "x"
    }
