"""Metadata database: tables (schema.py), engine set-up (engine.py), migrations (Alembic), and every
query pressrun makes (repo/, one module per subject)."""

from pressrun.db.engine import connect, migrate
from pressrun.db.schema import metadata

__all__ = ["connect", "metadata", "migrate"]
