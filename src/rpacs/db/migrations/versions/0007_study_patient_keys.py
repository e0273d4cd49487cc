"""Studies: the keyed hashes of every original PatientID a study arrived under

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Studies stored before knew only their first PatientID (studies.patient_key).
    op.create_table(
        "study_patient_keys",
        sa.Column("study_id", sa.Integer(),
                  sa.ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("patient_key", sa.String(length=64), primary_key=True),
    )
    op.create_index("ix_study_patient_keys_patient_key", "study_patient_keys",
                    ["patient_key"])


def downgrade() -> None:
    op.drop_index("ix_study_patient_keys_patient_key", "study_patient_keys")
    op.drop_table("study_patient_keys")
