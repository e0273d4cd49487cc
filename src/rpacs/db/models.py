"""SQLAlchemy 2 models of the index.

The index holds only de-identified values. The one link back to a person is
``Study.patient_key``, a keyed hash (HMAC with the installation secret) of the original
PatientID, kept so that a withdrawn patient's studies can be found and refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A research project: ethics approval, PI, participant-ID rule, events and its secret."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    acronym: Mapped[str] = mapped_column(String(20), unique=True)
    rek: Mapped[str] = mapped_column(String(64))
    pi_name: Mapped[str] = mapped_column(String(200))
    pi_email: Mapped[str] = mapped_column(String(254))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    participant_pattern: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[str]] = mapped_column(JSON)
    end_action: Mapped[str] = mapped_column(String(16))
    date_shift: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="active")
    #: 256 random bits; keys the UID and date-offset functions. Never printed or exported.
    secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: Per-project de-identification profile (YAML); empty means the default profile.
    deid_profile: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    participants: Mapped[list[Participant]] = relationship(back_populates="project")
    studies: Mapped[list[Study]] = relationship(back_populates="project")


class Participant(Base):
    """A research participant of one project, known only by the research ID."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("project_id", "research_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    research_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    project: Mapped[Project] = relationship(back_populates="participants")
    studies: Mapped[list[Study]] = relationship(back_populates="participant")


class Study(Base):
    """A de-identified study in a project (UIDs, dates and texts as stored)."""

    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("project_id", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str] = mapped_column(String(64))
    study_id: Mapped[str] = mapped_column(String(16), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="")
    study_time: Mapped[str] = mapped_column(String(16), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    modalities: Mapped[str] = mapped_column(String(64), default="")
    #: HMAC-SHA256(installation secret, original PatientID), hex. Never the ID itself.
    patient_key: Mapped[str] = mapped_column(String(64), index=True)
    n_series: Mapped[int] = mapped_column(Integer, default=0)
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    project: Mapped[Project] = relationship(back_populates="studies")
    participant: Mapped[Participant] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("study_id", "series_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    series_description: Mapped[str] = mapped_column(String(64), default="")
    body_part: Mapped[str] = mapped_column(String(16), default="")
    series_date: Mapped[str] = mapped_column(String(8), default="")
    n_instances: Mapped[int] = mapped_column(Integer, default=0)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """One stored file. ``sha256`` is of the stored (de-identified) bytes."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("project_id", "sop_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    sop_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    transfer_syntax: Mapped[str] = mapped_column(String(64), default="")
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Path relative to the store folder.
    path: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))

    series: Mapped[Series] = relationship(back_populates="instances")


class TagInventory(Base):
    """Every tag path present in a project's data, with how many instances carry it.

    ``tag_path`` is the chain of tags from the top level, e.g. ``00081140/00081155`` for a
    ReferencedSOPInstanceUID inside ReferencedImageSequence; private tags are written with
    their creator, e.g. ``00291010@SIEMENS CSA HEADER``.
    """

    __tablename__ = "tag_inventory"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    tag_path: Mapped[str] = mapped_column(String(200), primary_key=True)
    keyword_path: Mapped[str] = mapped_column(String(400))
    vr: Mapped[str] = mapped_column(String(2))
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    n_distinct: Mapped[int] = mapped_column(Integer, default=0)


class TagValue(Base):
    """A distinct (truncated) value of a tag path and how many instances carry it."""

    __tablename__ = "tag_values"
    __table_args__ = (Index("ix_tag_values_rank", "project_id", "tag_path", "n_instances"),)

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    tag_path: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(128), primary_key=True)
    n_instances: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """Append-only record of who did what, when, and to how many things."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    count: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ExportId(Base):
    """The export ID a participant has under one export spec of a project.

    Stored so that a rerun, or a later run with more participants, gives every participant
    the ID it had before. Only specs that keep a coupling list store their IDs here: for a
    spec without one, this table would itself be the coupling list.
    """

    __tablename__ = "export_ids"
    __table_args__ = (
        UniqueConstraint("project_id", "spec_name", "research_id"),
        UniqueConstraint("project_id", "spec_name", "export_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    spec_name: Mapped[str] = mapped_column(String(64))
    research_id: Mapped[str] = mapped_column(String(64))
    export_id: Mapped[str] = mapped_column(String(64))


class ExportRun(Base):
    """One completed export: which spec (name and SHA-256 of its text) over which data.

    ``content_sha256`` digests the exported instances (their stored hashes) and the
    sidecar, so that a rerun of the same spec on the same data is recognised and its README
    carries the date of the first run: the package stays byte-identical.
    """

    __tablename__ = "export_runs"
    __table_args__ = (Index("ix_export_runs_spec", "project_id", "spec_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    spec_name: Mapped[str] = mapped_column(String(64))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str] = mapped_column(String(64))
    made_on: Mapped[dt.date] = mapped_column(Date)
    output: Mapped[str] = mapped_column(Text)
    n_files: Mapped[int] = mapped_column(Integer, default=0)
