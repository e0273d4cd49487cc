"""SQLAlchemy 2 models of the index.

The index holds only de-identified values. The one link back to a person is
``Study.patient_key``, a keyed hash (HMAC with the installation secret) of the original
PatientID, kept so that a withdrawn patient's studies can be found and refused.

The annotations are evaluated as the classes are made (no ``from __future__ import
annotations``), and only references to a class defined further down are quoted: SQLAlchemy
would otherwise evaluate each of some 400 annotation strings, which cost every command's
start about 35 ms.
"""

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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

    participants: Mapped[list["Participant"]] = relationship(back_populates="project")
    studies: Mapped[list["Study"]] = relationship(back_populates="project")


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

    project: Mapped["Project"] = relationship(back_populates="participants")
    studies: Mapped[list["Study"]] = relationship(back_populates="participant")


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

    project: Mapped["Project"] = relationship(back_populates="studies")
    participant: Mapped["Participant"] = relationship(back_populates="studies")
    series: Mapped[list["Series"]] = relationship(back_populates="study")


class StudyPatientKey(Base):
    """Another original patient (keyed hash) whose PatientID came with a study's instances.

    A study may arrive under more than one PatientID: a trauma patient first registered
    under a temporary ID, then merged; one CD mixing IDs. ``Study.patient_key`` holds the
    first; the others are kept here, so that asking which projects hold a patient's data,
    and refusing a withdrawn patient's studies, find every one.
    """

    __tablename__ = "study_patient_keys"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


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

    study: Mapped["Study"] = relationship(back_populates="series")
    instances: Mapped[list["Instance"]] = relationship(back_populates="series")


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

    series: Mapped["Series"] = relationship(back_populates="instances")


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


class User(Base):
    """A person who logs in to the web app or calls the API. Names are unique, any case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: Argon2id hash in PHC string form (algorithm, parameters and salt included).
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Failed logins since the last successful one; drives the slow-down and the lock.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    #: No password is even checked before this moment (the slow-down after failures).
    retry_after: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Web sessions that began before this moment are void (set on logout and new password).
    sessions_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                               nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ApiToken(Base):
    """A user's token for scripts. Only its SHA-256 is kept: the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, so a user can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                             nullable=True)


class Membership(Base):
    """A user's role in a project: owner, data-manager or member."""

    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))


class TagCheck(Base):
    """A reviewer's mark that a tag path of a project was looked at, and what it held then.

    The counts at the time of the check let the Review page show a checked tag again when
    new data changed it (new values, or more instances carrying it).
    """

    __tablename__ = "tag_checks"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    tag_path: Mapped[str] = mapped_column(String(200), primary_key=True)
    checked_by: Mapped[str] = mapped_column(String(64))
    checked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    n_instances: Mapped[int] = mapped_column(Integer, default=0)
    n_distinct: Mapped[int] = mapped_column(Integer, default=0)


# --- The DICOM gateway: quarantine, assignment and query/retrieve (migration 0004) ---


class QuarantineStudy(Base):
    """A study received over DICOM, waiting in the quarantine or already assigned.

    The quarantine holds identifying originals by design; this row keeps only what the
    quarantine list and the assignment need: the original StudyInstanceUID (to name the study
    to ``rpacs assign``), study date, modalities, description and accession number, and the
    keyed hash of the original PatientID — never the patient's name or ID.
    ``folder`` is a keyed hash of the StudyInstanceUID, so quarantine paths say nothing.
    """

    __tablename__ = "quarantine_studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    folder: Mapped[str] = mapped_column(String(64), unique=True)
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    called_ae: Mapped[str] = mapped_column(String(16), default="")
    first_arrival: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_arrival: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    study_date: Mapped[str] = mapped_column(String(8), default="")
    modalities: Mapped[str] = mapped_column(String(64), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="")
    patient_key: Mapped[str] = mapped_column(String(64), default="", index=True)
    #: receiving, complete (waiting for a human), assigned or refused.
    state: Mapped[str] = mapped_column(String(16), default="receiving", index=True)
    #: Why a complete study still waits or was refused (never a value from the data).
    note: Mapped[str] = mapped_column(String(200), default="")
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    participant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    event: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: user, rule, coupling-list or auto-id.
    assigned_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )

    instances: Mapped[list["QuarantineInstance"]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True
    )


class QuarantineInstance(Base):
    """One received original in the quarantine, by its keyed-hash file name.

    ``state`` is ``received`` until the import took it into the archive (``imported``,
    after which the original is deleted) or refused it (``rejected``, the original kept
    until the study is purged).
    """

    __tablename__ = "quarantine_instances"
    __table_args__ = (UniqueConstraint("study_id", "sop_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("quarantine_studies.id", ondelete="CASCADE"), index=True
    )
    sop_uid: Mapped[str] = mapped_column(String(64))
    series_uid: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="received")

    study: Mapped["QuarantineStudy"] = relationship(back_populates="instances")


class RemoteAE(Base):
    """A DICOM node allowed to query and retrieve one project's data."""

    __tablename__ = "remote_aes"
    __table_args__ = (UniqueConstraint("project_id", "ae_title"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ae_title: Mapped[str] = mapped_column(String(16), index=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)


class RoutingRule(Base):
    """Assigns matching studies of a trusted sender to a project, PatientID as participant.

    Empty criteria match everything; regular expressions are matched with ``re.fullmatch``.
    """

    __tablename__ = "routing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    called_ae: Mapped[str] = mapped_column(String(16), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    patient_id_regex: Mapped[str] = mapped_column(String(200), default="")
    patient_name_regex: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CouplingEntry(Base):
    """One line of an uploaded coupling list, keyed by the hash of its AccessionNumber."""

    __tablename__ = "coupling_entries"

    #: HMAC-SHA256(installation secret, AccessionNumber), hex: the list's accession numbers
    #: are not kept in the clear.
    accession_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    participant: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class AutoIdProject(Base):
    """A project whose studies, sent to its own AE title, get participant IDs automatically."""

    __tablename__ = "auto_id_projects"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class AutoIdMapping(Base):
    """Original patient (keyed hash of the PatientID) → the research ID auto-ID drew."""

    __tablename__ = "auto_id_mappings"
    __table_args__ = (UniqueConstraint("project_id", "research_id"),)

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    research_id: Mapped[str] = mapped_column(String(64))


class Withdrawal(Base):
    """A participant who withdrew: their studies are deleted, their patient refused later.

    ``paths`` lists the store folders to delete, so that a withdrawal interrupted after its
    index change and before its file deletions is completed by running it again.
    """

    __tablename__ = "withdrawals"
    __table_args__ = (UniqueConstraint("project_id", "research_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    research_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    files_removed: Mapped[bool] = mapped_column(Boolean, default=False)


class RefusedPatient(Base):
    """An original patient (keyed hash) whose studies a project refuses after a withdrawal."""

    __tablename__ = "refused_patients"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    patient_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    withdrawal_id: Mapped[int] = mapped_column(ForeignKey("withdrawals.id", ondelete="CASCADE"))


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


class ExportSpecText(Base):
    """An export spec stored with a project, edited as YAML in the web app.

    The text is kept exactly as saved (its SHA-256 is the spec's identity in every package
    README and audit record); it was valid when saved, and is validated again when used.
    """

    __tablename__ = "export_specs"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now())


class ExportJob(Base):
    """An export started from the web app or API, run by a process of its own.

    ``spec_text`` is the text the job runs (a stored spec edited later does not change a
    job, and a resumed job runs the same spec, so the engine resumes its work folder).
    ``lock_token`` names the lock file the job's process holds while it lives: a job
    ``queued`` or ``running`` whose lock is free was interrupted. ``error`` is a message
    for the user, never patient data.
    """

    __tablename__ = "export_jobs"
    __table_args__ = (Index("ix_export_jobs_project", "project_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    spec_name: Mapped[str] = mapped_column(String(64))
    spec_sha256: Mapped[str] = mapped_column(String(64))
    spec_text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    started_by: Mapped[str] = mapped_column(String(100))
    #: Who resumed the job last ("" if no one): its run is theirs, and audited as theirs.
    resumed_by: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True),
                                                            nullable=True)
    #: The package's path, relative to the job's folder ("" until done).
    package: Mapped[str] = mapped_column(Text, default="")
    #: The one zip a download sends, relative to the job's folder ("" until done).
    download: Mapped[str] = mapped_column(Text, default="")
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    lock_token: Mapped[str] = mapped_column(String(64), default="")
