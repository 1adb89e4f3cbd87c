"""The tables. SQLAlchemy Core, portable between SQLite and PostgreSQL.

Every table that holds a tenant's data carries ``workspace_id``; every query the API makes filters
on it, so one workspace never sees another's rows (the API answers 404 for foreign ids).

Item rows are the unit of durability: a batch is accepted by writing its items (``queued``) in one
transaction, and an item leaves ``rendering`` only in the transaction that records its outcome.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, nullable: bool = True) -> Column:
    return Column(name, DateTime(timezone=True), nullable=nullable)


workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    _ts("created_at", nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),  # shown in listings; the key itself is never stored
    Column("key_hash", String(64), nullable=False, unique=True),  # sha256 hex of a 256-bit random key
    Column("plan", String(60), nullable=False),
    _ts("created_at", nullable=False),
    _ts("revoked_at"),
)

templates = Table(
    "templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(40), nullable=False, unique=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("current_version", Integer, nullable=False),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("deleted_at"),
    Index("ix_templates_workspace_created", "workspace_id", "created_at"),
)

template_versions = Table(
    "template_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("template_id", ForeignKey("templates.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("html", Text, nullable=False),
    Column("css", Text, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("format", String(10), nullable=False),
    Column("quality", Integer, nullable=False),
    Column("scale", Float, nullable=False),
    Column("locale", String(40), nullable=True),
    Column("pdf", JSON, nullable=False),
    Column("sample_data", JSON, nullable=True),
    Column("column_types", JSON, nullable=False),
    _ts("created_at", nullable=False),
    UniqueConstraint("template_id", "version"),
)

template_assets = Table(
    "template_assets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("template_id", ForeignKey("templates.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    _ts("created_at", nullable=False),
    UniqueConstraint("template_id", "name"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(40), nullable=False, unique=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
    Column("template_id", ForeignKey("templates.id"), nullable=False),
    Column("template_version", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("format", String(10), nullable=False),
    Column("quality", Integer, nullable=False),
    Column("scale", Float, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("locale", String(40), nullable=True),
    Column("concurrency", Integer, nullable=False),
    Column("filename", String(500), nullable=True),
    Column("zip", Boolean, nullable=False),
    Column("webhook_url", String(2000), nullable=True),
    # The PDF page the batch was accepted with (pressrun.options); NULL for batches accepted before
    # it was stored here, which use their template version's page.
    Column("pdf", JSON(none_as_null=True), nullable=True),
    Column("total_items", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    _ts("created_at", nullable=False),
    _ts("started_at"),
    _ts("completed_at"),
    Index("ix_batches_workspace_created", "workspace_id", "created_at"),
    Index("ix_batches_status", "status"),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("batch_id", ForeignKey("batches.id"), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("variables", Text, nullable=False),  # the row, as JSON text
    # queued -> rendering -> completed | failed; queued -> cancelled
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("file_name", String(300), nullable=True),
    Column("output_key", String(500), nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("bytes", BigInteger, nullable=True),
    Column("render_ms", Integer, nullable=True),
    Column("error_code", String(60), nullable=True),
    Column("error_message", Text, nullable=True),
    # The error's machine-readable context (column, value, variable…). None is SQL NULL, not JSON null:
    # no JSON encoding for each of a 50,000-row batch's queued items.
    Column("error_details", JSON(none_as_null=True), nullable=True),
    _ts("started_at"),
    _ts("finished_at"),
    _ts("expired_at"),
    UniqueConstraint("batch_id", "idx"),
    Index("ix_items_batch_status", "batch_id", "status"),
    Index("ix_items_status_finished", "status", "finished_at"),
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
    Column("key", String(500), nullable=False, unique=True),
    Column("bytes", BigInteger, nullable=False),
    _ts("created_at", nullable=False),
    _ts("expires_at", nullable=False),
    Index("ix_files_expires", "expires_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_hash", String(64), nullable=False),  # the API key the request came with
    Column("idem_key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),  # NULL while the first request is still running
    Column("content_type", String(200), nullable=True),
    Column("body", LargeBinary, nullable=True),
    _ts("created_at", nullable=False),
    UniqueConstraint("key_hash", "idem_key"),
    Index("ix_idempotency_created", "created_at"),
)

# --- webhooks -----------------------------------------------------------------------------------

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(40), nullable=False, unique=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False, index=True),
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),  # e.g. ["batch.completed"] or ["*"]
    Column("description", String(500), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("secret", String(100), nullable=False),  # needed in clear to sign; shown once to the user
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("disabled_reason", String(500), nullable=True),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    _ts("deleted_at"),
)

# One secret per workspace for batches' own webhookUrl deliveries.
workspace_secrets = Table(
    "workspace_secrets",
    metadata,
    Column("workspace_id", ForeignKey("workspaces.id"), primary_key=True),
    Column("batch_webhook_secret", String(100), nullable=False),
    _ts("updated_at", nullable=False),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(40), nullable=False, unique=True),
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON sent, fixed at creation (retries resend it byte for byte)
    _ts("created_at", nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(40), nullable=False, unique=True),  # X-Pressrun-Delivery-Id, stable across retries
    Column("event_id", ForeignKey("webhook_events.id"), nullable=False),
    Column("subscription_id", ForeignKey("webhook_subscriptions.id"), nullable=True),  # NULL: a batch's webhookUrl
    Column("workspace_id", ForeignKey("workspaces.id"), nullable=False),
    Column("url", String(2000), nullable=False),
    # pending -> succeeded | failed (gave up or refused)
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    _ts("next_attempt_at"),
    _ts("leased_until"),  # set while an attempt is in flight; a crash leaves it to expire (or be cleared at start)
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    _ts("created_at", nullable=False),
    _ts("completed_at"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    _ts("attempted_at", nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", Text, nullable=True),
    _ts("next_retry_at"),
)
