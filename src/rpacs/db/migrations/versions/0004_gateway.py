"""DICOM gateway: quarantine, routing rules, coupling lists, auto-ID, withdrawals, remote AEs

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25 08:54:59.974814
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auto_id_mappings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("research_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "patient_key"),
        sa.UniqueConstraint("project_id", "research_id"),
    )
    op.create_table(
        "auto_id_projects",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id"),
        sa.UniqueConstraint("ae_title"),
    )
    op.create_table(
        "coupling_entries",
        sa.Column("accession_key", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("accession_key"),
    )
    with op.batch_alter_table("coupling_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coupling_entries_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "quarantine_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("folder", sa.String(length=64), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("called_ae", sa.String(length=16), nullable=False),
        sa.Column("first_arrival", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_arrival", sa.DateTime(timezone=True), nullable=False),
        sa.Column("study_date", sa.String(length=8), nullable=False),
        sa.Column("modalities", sa.String(length=64), nullable=False),
        sa.Column("study_description", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("participant", sa.String(length=64), nullable=True),
        sa.Column("event", sa.String(length=64), nullable=True),
        sa.Column("assigned_by", sa.String(length=100), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("folder"),
        sa.UniqueConstraint("study_uid"),
    )
    with op.batch_alter_table("quarantine_studies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_studies_last_arrival"), ["last_arrival"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_quarantine_studies_patient_key"), ["patient_key"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_quarantine_studies_state"), ["state"], unique=False)

    op.create_table(
        "remote_aes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "ae_title"),
    )
    with op.batch_alter_table("remote_aes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_remote_aes_ae_title"), ["ae_title"], unique=False)

    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("called_ae", sa.String(length=16), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("patient_id_regex", sa.String(length=200), nullable=False),
        sa.Column("patient_name_regex", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("research_id", sa.String(length=64), nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("paths", sa.JSON(), nullable=False),
        sa.Column("files_removed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "research_id"),
    )
    op.create_table(
        "quarantine_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("series_uid", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["quarantine_studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "sop_uid"),
    )
    with op.batch_alter_table("quarantine_instances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_instances_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "refused_patients",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("patient_key", sa.String(length=64), nullable=False),
        sa.Column("withdrawal_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["withdrawal_id"], ["withdrawals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id", "patient_key"),
    )


def downgrade() -> None:
    op.drop_table("refused_patients")
    with op.batch_alter_table("quarantine_instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_instances_study_id"))

    op.drop_table("quarantine_instances")
    op.drop_table("withdrawals")
    op.drop_table("routing_rules")
    with op.batch_alter_table("remote_aes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_aes_ae_title"))

    op.drop_table("remote_aes")
    with op.batch_alter_table("quarantine_studies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_studies_state"))
        batch_op.drop_index(batch_op.f("ix_quarantine_studies_patient_key"))
        batch_op.drop_index(batch_op.f("ix_quarantine_studies_last_arrival"))

    op.drop_table("quarantine_studies")
    with op.batch_alter_table("coupling_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupling_entries_expires_at"))

    op.drop_table("coupling_entries")
    op.drop_table("auto_id_projects")
    op.drop_table("auto_id_mappings")
