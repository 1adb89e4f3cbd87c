"""Settings: one table of name, default and help, read from ``PRESSRUN_*`` environment variables.

Environment variables map mechanically onto the nested groups: ``settings.render.concurrency`` is
``PRESSRUN_RENDER__CONCURRENCY``. ``pressrun settings`` prints the table; a test fails when a setting
has no description. Build a :class:`Settings` once at start-up and pass it down; never at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from pressrun.errors import ConfigError


def default_concurrency() -> int:
    return (os.cpu_count() or 1) + 1


class RenderSettings(BaseModel):
    concurrency: int = Field(
        default_factory=default_concurrency,
        ge=1,
        le=64,
        description="Warm Chromium pages rendering at once (default: CPU count + 1).",
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Per-row render time limit in seconds; a row past it fails with render_timeout."
    )
    recycle_after: int = Field(
        2000, ge=1, description="Restart Chromium after this many renders, to keep memory flat."
    )
    chromium_path: str | None = Field(
        None,
        validation_alias=AliasChoices("chromium_path", "PRESSRUN_CHROMIUM_PATH"),
        description="Chromium executable. Also read from PRESSRUN_CHROMIUM_PATH. "
        "Default: the system chromium, else Playwright's own browser.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (host or host:port, '*.example.com' wildcards) a template may load over the "
        "network. Everything else except the template's own assets and data: URLs is blocked. "
        "Comma-separated in the environment.",
    )
    javascript: bool = Field(
        False, description="Run JavaScript inside templates. Off by default: templates are untrusted."
    )
    png_compress_level: int = Field(
        3, ge=0, le=9, description="zlib level for PNG output (0 = fastest/largest, 9 = slowest/smallest)."
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value


class TemplatingSettings(BaseModel):
    locale: str = Field("en_US", description="Default locale for number, currency and date filters.")
    strict: bool = Field(True, description="Fail a row when the template uses a variable the row lacks.")
    timeout_s: float = Field(2.0, gt=0, description="Time budget for evaluating one row's template.")
    max_output_chars: int = Field(
        5_000_000, ge=1000, description="Largest HTML one row's template may produce."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRESSRUN_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    render: RenderSettings = Field(default_factory=RenderSettings, description="Chromium rendering.")
    templating: TemplatingSettings = Field(
        default_factory=TemplatingSettings, description="The expression engine."
    )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Environment first, then explicit overrides (CLI flags). PRESSRUN_CHROMIUM_PATH is honoured."""
        try:
            settings = cls()
        except ValidationError as exc:
            raise config_error(exc) from exc
        except SettingsError as exc:
            raise ConfigError(f"invalid PRESSRUN_* environment variable: {exc}") from exc
        legacy_path = os.environ.get("PRESSRUN_CHROMIUM_PATH")
        if legacy_path and not settings.render.chromium_path:
            settings.render.chromium_path = legacy_path
        for dotted, value in overrides.items():
            if value is None:
                continue
            group_name, _, attr = dotted.partition(".")
            group = getattr(settings, group_name)
            setattr(group, attr, value)
        return settings


def config_error(exc: ValidationError) -> ConfigError:
    """Name the environment variable, the bad value and what is valid."""
    problems = []
    for error in exc.errors():
        env = "PRESSRUN_" + "__".join(str(part).upper() for part in error["loc"])
        problems.append(f"{env}={error.get('input')!r}: {error['msg']}")
    return ConfigError("invalid setting: " + "; ".join(problems), setting=problems[0].split("=")[0])


def iter_settings_table() -> Iterator[tuple[str, str, Any, str]]:
    """Yield (dotted name, environment variable, default, help) for every setting."""
    for group_name, group_field in Settings.model_fields.items():
        group_model = group_field.annotation
        assert isinstance(group_model, type) and issubclass(group_model, BaseModel)
        for name, field in group_model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            env = f"PRESSRUN_{group_name.upper()}__{name.upper()}"
            yield f"{group_name}.{name}", env, default, field.description or ""
