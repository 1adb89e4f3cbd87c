"""Settings: one table of name, default and help, read from ``PRESSRUN_*`` environment variables.

Environment variables map mechanically onto the nested groups: ``settings.render.concurrency`` is
``PRESSRUN_RENDER__CONCURRENCY``. ``pressrun settings`` prints the table; a test fails when a setting
has no description. Build a :class:`Settings` once at start-up and pass it down; never at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from pressrun.errors import ConfigError


def default_browsers() -> int:
    return min(os.cpu_count() or 1, 8)


def default_concurrency() -> int:
    return 2 * default_browsers()


class RenderSettings(BaseModel):
    concurrency: int = Field(
        default_factory=default_concurrency,
        ge=1,
        le=64,
        description="Warm Chromium pages rendering at once, shared out among the browsers "
        "(default: two per browser).",
    )
    browsers: int = Field(
        default_factory=default_browsers,
        ge=1,
        le=32,
        description="Chromium instances side by side (default: CPU count, at most 8). One instance "
        "draws one frame at a time, so more keep more cores busy; each costs about 300 MB.",
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Per-row render time limit in seconds; a row past it fails with render_timeout."
    )
    recycle_after: int = Field(
        2000, ge=1, description="Restart each Chromium after this many renders, to keep memory bounded "
        "(renders already in flight finish first)."
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
        False,
        description="Run JavaScript inside templates. Off by default: templates are untrusted. When on, each "
        "row is loaded as a new document, and a page that sets window.pressrunReady = false is captured "
        "once it sets it to true.",
    )
    png_compress_level: int = Field(
        0, ge=0, le=9, description="0 writes Chromium's fast PNG encoding as it is (least CPU; about 1.35x "
        "the size of Chromium's default encoding); 1-9 recompresses it with zlib at that level "
        "(3: about 1.1x, 6-9: smallest, about 4 ms more CPU per 1200x630 image).",
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
    processes: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 2),
        ge=1,
        le=32,
        description="Child processes that render templates (default: CPU count, at most 2). A template "
        "that crashes or runs away takes down only its child, which is replaced.",
    )
    memory_mb: int = Field(
        1024, ge=128, description="Address-space cap of each template process, in MB; a row needing more fails."
    )


class PlanSettings(BaseModel):
    rate_limit: str = Field("600/minute", description="Requests per key, in `limits` notation.")
    max_batch_items: int = Field(50_000, ge=1, description="Largest batch a key on this plan may submit.")
    max_concurrent_batches: int = Field(5, ge=1, description="Unfinished batches a workspace may have at once.")


def default_plans() -> dict[str, PlanSettings]:
    return {
        "default": PlanSettings(),
        "free": PlanSettings(rate_limit="60/minute", max_batch_items=1_000, max_concurrent_batches=1),
    }


class ApiSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `pressrun serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `pressrun serve` listens on.")
    public_url: str | None = Field(
        None, description="Base URL clients reach the server at, for file links (default: the request's own, "
                          "if its host is in api.allowed_hosts)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "::1"],
        description="Without public_url: the Host names a request's links may be built on (besides api.host); "
                    "other names get links on api.host:api.port, so a forged Host cannot point them elsewhere. "
                    "'*' trusts any.",
    )
    retention_s: int = Field(
        7 * 24 * 3600, ge=60, description="How long outputs are kept; signed file URLs expire with them."
    )
    sweep_interval_s: float = Field(600.0, gt=0, description="How often expired outputs are deleted.")
    max_body_mb: int = Field(100, ge=1, description="Largest request body (an upload) in MiB.")
    max_json_mb: int = Field(
        32, ge=1, description="Largest JSON request body in MiB (parsed whole in memory; 50,000 variable sets "
                              "are about 7 MiB). Uploads (CSV, XLSX, JSONL) have api.max_body_mb."
    )
    idempotency_ttl_s: int = Field(24 * 3600, ge=60, description="How long an Idempotency-Key is remembered.")
    plans: dict[str, PlanSettings] = Field(
        default_factory=default_plans,
        description="Plans by name (JSON in the environment): rate_limit, max_batch_items, max_concurrent_batches.",
    )


class WebhookSettings(BaseModel):
    retry_min_s: float = Field(180.0, gt=0, description="First retry delay of a failed delivery; doubles per attempt.")
    retry_max_s: float = Field(4 * 3600.0, gt=0, description="Longest delay between two delivery attempts.")
    max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts per event before giving up (default: 8 over about 6 hours)."
    )
    timeout_s: float = Field(10.0, gt=0, description="Time a receiver has to answer one delivery.")
    disable_after_failures: int = Field(
        20, ge=1, description="Disable a subscription after this many consecutive events that failed to deliver."
    )
    allow_private_networks: bool = Field(
        False, description="Allow webhook URLs on loopback/private/link-local addresses (tests, intranets)."
    )
    concurrency: int = Field(8, ge=1, le=100, description="Deliveries in flight at once.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PRESSRUN_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(
        Path("data"), description="Where the embedded database, output files and the signing secret live."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata database, e.g. postgresql+psycopg://host/db "
        "(default: SQLite in the data directory).",
    )
    render: RenderSettings = Field(default_factory=RenderSettings, description="Chromium rendering.")
    templating: TemplatingSettings = Field(
        default_factory=TemplatingSettings, description="The expression engine."
    )

    api: ApiSettings = Field(default_factory=ApiSettings, description="The HTTP service.")
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings, description="Webhook deliveries.")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pressrun.db').resolve()}"

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
        if not (isinstance(group_model, type) and issubclass(group_model, BaseModel)):
            default = group_field.get_default(call_default_factory=True)
            yield group_name, f"PRESSRUN_{group_name.upper()}", default, group_field.description or ""
            continue
        for name, field in group_model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            env = f"PRESSRUN_{group_name.upper()}__{name.upper()}"
            yield f"{group_name}.{name}", env, default, field.description or ""
