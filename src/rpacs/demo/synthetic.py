"""A synthetic clinical MR study as a scanner sends it, with identifying values planted.

Used by ``rpacs demo`` and the benchmarks. The identifying values sit everywhere the
reference importer was measured to leak them (PRODUCT.md): other IDs, addresses, staff and
station names, serial numbers, free-text comments, IDs inside request sequences, nested
sequences and private tags, including a Siemens CSA-like header with the name inside.
Every name and number here is fictional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

_ROOT = "1.2.826.0.1.3680043.8.498.7"


@dataclass(frozen=True)
class SyntheticPatient:
    name: str = "Nordmann^Kari^Synnøve"
    patient_id: str = "01017012345"
    other_id: str = "HUS-4471923"
    birth_date: str = "19700101"
    address: str = "Fjellveien 17, 5019 Bergen"
    accession: str = "HUSRAD2023051701"
    physician: str = "Lege^Per^Olav"
    operator: str = "Radiograf^Anne"
    station: str = "HUS-MR3-CONSOLE"
    serial: str = "MRC-20231"

    def planted_values(self) -> list[str]:
        """Strings that must not be found in anything de-identified."""
        return ["Nordmann", "Synnøve", self.patient_id, self.other_id, self.birth_date,
                "Fjellveien", self.accession, "Lege", "Radiograf", self.station, self.serial,
                "Haukeland"]


_SERIES = [
    (1, "t1_mprage_sag_1mm", "GR\\IR", 2300.0, 2.98, 1.0),
    (2, "t2_flair_tra", "SE\\IR", 9000.0, 81.0, 3.0),
    (3, "ep2d_diff_tra_b1000", "EP", 4600.0, 89.0, 4.0),
    (4, "t2_tse_cor", "SE", 5000.0, 98.0, 3.0),
]


def _uid(*parts: int) -> str:
    return ".".join([_ROOT, *(str(p) for p in parts)])


def _image(rows: int, cols: int, slice_index: int, seed: int) -> bytes:
    """A head-like phantom: bright ellipse, darker inner ellipse, a little noise."""
    y, x = np.mgrid[-1:1:rows * 1j, -1:1:cols * 1j]
    shrink = 1 - abs(slice_index - 10) / 40
    outer = (x / (0.75 * shrink)) ** 2 + (y / (0.9 * shrink)) ** 2 <= 1
    inner = (x / (0.6 * shrink)) ** 2 + (y / (0.75 * shrink)) ** 2 <= 1
    image = outer * 900.0 + inner * 600.0
    rng = np.random.default_rng(seed)
    image += rng.normal(0, 20, size=image.shape)
    return np.clip(image, 0, 4095).astype("<u2").tobytes()


def _series_dataset(patient: SyntheticPatient, study: int, series: tuple, rows: int,
                    cols: int) -> Dataset:
    number, description, sequence, tr, te, thickness = series
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20230517"
    ds.StudyTime, ds.SeriesTime = "101502", f"1015{10 + number:02d}"
    ds.AccessionNumber = patient.accession
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = "Haukeland universitetssjukehus"
    ds.InstitutionAddress = "Jonas Lies vei 65, 5021 Bergen"
    ds.ReferringPhysicianName = patient.physician
    ds.StationName = patient.station
    ds.StudyDescription = f"MR CAPUT {patient.name.split('^')[0]} {patient.birth_date}"
    ds.SeriesDescription = description
    ds.InstitutionalDepartmentName = "Radiologisk avdeling"
    ds.PerformingPhysicianName = patient.physician
    ds.OperatorsName = patient.operator
    ds.ManufacturerModelName = "Prisma"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = "HUS"
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = "F"
    ds.OtherPatientIDs = patient.other_id
    ds.PatientAge = "053Y"
    ds.PatientSize = 1.68
    ds.PatientWeight = 64.0
    ds.PatientAddress = patient.address
    ds.PatientTelephoneNumbers = "+47 55 97 50 00"
    ds.AdditionalPatientHistory = f"Kontroll etter operasjon. Pasient {patient.name}."
    ds.BodyPartExamined = "HEAD"
    ds.ScanningSequence = sequence
    ds.SequenceVariant = "SK\\SP"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "3D" if number == 1 else "2D"
    ds.SequenceName = f"*seq{number}"
    ds.SliceThickness = thickness
    ds.RepetitionTime = tr
    ds.EchoTime = te
    ds.NumberOfAverages = 1.0
    ds.ImagingFrequency = 123.2
    ds.MagneticFieldStrength = 3.0
    ds.SpacingBetweenSlices = thickness
    ds.EchoTrainLength = 1
    ds.PercentSampling = 100.0
    ds.PixelBandwidth = 240.0
    ds.DeviceSerialNumber = patient.serial
    ds.SoftwareVersions = "syngo MR XA30"
    ds.ProtocolName = description
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, rows, cols, 0]
    ds.FlipAngle = 9.0
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid(study)
    ds.SeriesInstanceUID = _uid(study, number)
    ds.StudyID = "1"
    ds.SeriesNumber = number
    ds.FrameOfReferenceUID = _uid(study, 999)
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [230.0 / rows, 230.0 / cols]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 700, 1400
    ds.ImageComments = f"Pasient {patient.name.replace('^', ' ')} urolig under opptak"
    ds.PerformedProcedureStepStartDate = "20230517"
    ds.PerformedProcedureStepDescription = "MR CAPUT"
    request = Dataset()
    request.RequestedProcedureID = patient.accession
    request.ScheduledProcedureStepID = patient.other_id
    request.RequestedProcedureDescription = f"MR caput, {patient.name}"
    ds.RequestAttributesSequence = Sequence([request])
    # A three-deep structure with a person name at the bottom (as in SR-like content).
    inner = Dataset()
    inner.PersonName = patient.physician
    inner.TextValue = f"Henvist av {patient.physician}"
    middle = Dataset()
    middle.ContentSequence = Sequence([inner])
    outer = Dataset()
    outer.ContentSequence = Sequence([middle])
    ds.AcquisitionContextSequence = Sequence([outer])
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00290011, "LO", "SIEMENS MEDCOM HEADER2")
    ds.add_new(0x00291120, "LO", f"Operator note: {patient.operator}")
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000" if number == 3 else "0")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "HUSMR3"
    ds.file_meta = meta
    return ds


def write_mr_study(folder: Path, *, seed: int = 1, n_series: int = 3, slices: int = 20,
                   rows: int = 256, cols: int = 256,
                   patient: SyntheticPatient | None = None) -> list[Path]:
    """Write one study of ``n_series`` series × ``slices`` images; returns the file paths.

    File names carry the patient's name, as exports from clinical systems often do, so a
    de-identifier that copied names over would be caught.
    """
    patient = patient or SyntheticPatient()
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    images = [_image(rows, cols, i, seed) for i in range(min(slices, 20))]
    for s in range(n_series):
        series = _SERIES[s % len(_SERIES)]
        number = series[0] + (s // len(_SERIES)) * 10
        ds = _series_dataset(patient, seed, (number, *series[1:]), rows, cols)
        for i in range(slices):
            ds.SOPInstanceUID = _uid(seed, number, i + 1)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.InstanceNumber = i + 1
            ds.ImagePositionPatient = [-115.0, -115.0, -40.0 + i * series[5]]
            ds.SliceLocation = -40.0 + i * series[5]
            ds.AcquisitionNumber = 1
            ds.InstanceCreationDate = "20230517"
            ds.InstanceCreationTime = f"1016{i % 60:02d}"
            ref = Dataset()
            ref.ReferencedSOPClassUID = MRImageStorage
            ref.ReferencedSOPInstanceUID = _uid(seed, number, (i + 1) % slices + 1)
            ds.ReferencedImageSequence = Sequence([ref])
            csa = (b"SV10\x04\x03\x02\x01" + f"PatientName={patient.name};".encode()
                   + b"MosaicRefAcqTimes=0.0 52.5 105.0;" + b"\x00" * 6)
            ds.add_new(0x00291010, "OB", csa + b"\x00" * (len(csa) % 2))
            ds.PixelData = images[i % len(images)]
            path = folder / f"{patient.name.split('^')[0]}_S{number:02d}_I{i + 1:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths
