"""batches.pdf and items.error_details

A batch stores the PDF page it was accepted with (the options are resolved once, at acceptance), and
a failed item keeps its error's details (the column, value or variable), as errors.jsonl does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("pdf", sa.JSON(), nullable=True))
    with op.batch_alter_table("items") as batch_op:
        batch_op.add_column(sa.Column("error_details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch_op:
        batch_op.drop_column("error_details")
    with op.batch_alter_table("batches") as batch_op:
        batch_op.drop_column("pdf")
