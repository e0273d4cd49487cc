"""A small factory of test DICOM files with planted identifying values.

Tests build their own data (as pydicom's do) so that every planted value is known and can be
searched for, byte by byte, in whatever rpacs writes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

PATIENT_NAME = "Testesen^Ola^Magnus"
PATIENT_ID = "12057812345"
OTHER_ID = "HUS-778899"
ACCESSION = "ACC20230517X"
BIRTH_DATE = "19780512"
STUDY_DATE = "20230517"
ROOT = "1.2.826.0.1.3680043.8.498"

#: Values that must never appear in anything rpacs stores.
PLANTED = [
    b"Testesen",
    b"Magnus",
    PATIENT_ID.encode(),
    OTHER_ID.encode(),
    ACCESSION.encode(),
    BIRTH_DATE.encode(),
    b"Storgata 12",
    b"Dr. Hansen",
    b"SN-4711-AB",
]


@dataclass(frozen=True)
class Instance:
    study: int = 1
    series: int = 1
    number: int = 1
    patient_id: str = PATIENT_ID


def uid(*parts: int) -> str:
    return ".".join([ROOT, *(str(p) for p in parts)])


def mr_dataset(spec: Instance = Instance(), rows: int = 16, cols: int = 16) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = uid(spec.study, spec.series, spec.number)
    ds.StudyInstanceUID = uid(spec.study)
    ds.SeriesInstanceUID = uid(spec.study, spec.series)
    ds.FrameOfReferenceUID = uid(spec.study, 0)
    ds.Modality = "MR"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = spec.patient_id
    ds.OtherPatientIDs = OTHER_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.PatientAge = "045Y"
    ds.PatientAddress = "Storgata 12, 5003 Bergen"
    ds.AccessionNumber = ACCESSION
    ds.StudyDate = STUDY_DATE
    ds.SeriesDate = STUDY_DATE
    ds.StudyTime = "101500"
    ds.StudyID = "4711"
    ds.StudyDescription = f"MR CEREBRUM {BIRTH_DATE}"
    ds.SeriesDescription = "t1_mprage_sag"
    ds.SeriesNumber = spec.series
    ds.InstanceNumber = spec.number
    ds.ReferringPhysicianName = "Dr. Hansen^Per"
    ds.PerformingPhysicianName = "Dr. Hansen^Kari"
    ds.OperatorsName = "Dr. Hansen^Operator"
    ds.InstitutionName = "Haukeland"
    ds.InstitutionAddress = "Storgata 12"
    ds.StationName = "MRSTATION1"
    ds.DeviceSerialNumber = "SN-4711-AB"
    ds.ImageComments = "Patient Testesen Ola scanned"
    ref = Dataset()
    ref.ReferencedSOPClassUID = MRImageStorage
    ref.ReferencedSOPInstanceUID = uid(spec.study, spec.series, spec.number + 1000)
    ds.ReferencedImageSequence = Sequence([ref])
    request = Dataset()
    request.RequestedProcedureID = OTHER_ID
    request.ScheduledProcedureStepID = ACCESSION
    ds.RequestAttributesSequence = Sequence([request])
    # A Siemens CSA header (kept: dcm2niix needs it) that carries the name inside its bytes.
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "OB", b"SV10\x04\x03\x02\x01tPatientName=Testesen^Ola\x00\x00")
    ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.add_new(0x00091001, "LO", "Testesen Ola private note")
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(spec.study * 1000 + spec.series * 100 + spec.number)
    ds.PixelData = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def encoded(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """``ds`` as the bytes of a Part 10 file in ``syntax`` (``ds`` itself is left as it is)."""
    ds = copy.deepcopy(ds)
    ds.file_meta.TransferSyntaxUID = syntax
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_study(folder: Path, *, study: int = 1, series: int = 2, per_series: int = 3,
                patient_id: str = PATIENT_ID) -> list[Path]:
    paths = []
    for s in range(1, series + 1):
        for n in range(1, per_series + 1):
            ds = mr_dataset(Instance(study, s, n, patient_id))
            paths.append(write(ds, folder / f"Testesen_{study}_{s}_{n}.dcm"))
    return paths


def shipped_data_folders() -> list[Path]:
    """The folders of real-world files that pydicom and the ``pydicom-data`` package ship
    (read in place: nothing is downloaded)."""
    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    try:
        import data_store  # the pydicom-data package

        folders.append(Path(data_store.__file__).parent / "data")
    except ImportError:
        pass
    return [folder for folder in folders if folder.is_dir()]
