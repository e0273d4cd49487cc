"""Export jobs: who resumed a job last (the actor of its run's audit event)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs there already were never resumed by anyone on record: "".
    op.add_column("export_jobs", sa.Column("resumed_by", sa.String(length=100),
                                           server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("resumed_by")
