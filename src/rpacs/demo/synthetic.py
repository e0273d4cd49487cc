"""A synthetic clinical MR study as a scanner sends it, with identifying values planted.

Used by ``rpacs demo``, the tests and the throughput benchmark. The header is what a 3 T
Siemens scanner writes for a head examination (about 130 elements: equipment, acquisition
parameters, geometry, windowing, request attributes, private CSA headers), and the
identifying values sit everywhere the reference importer was measured to leak them
(PRODUCT.md, last section): other IDs, addresses, staff and station names, serial numbers,
free text with the patient's name, IDs inside the request attributes, a person name three
sequences deep, and private elements — a Siemens CSA header with the name inside and a
vendor block of free text. Every name, number and place here is fictional.

Writing is fast because each series is encoded once: the elements that all its instances
share are encoded by pydicom when the series starts, and per instance only the dozen that
vary (UIDs, position, references, pixels) are encoded and spliced in, in tag order. The
bytes are exactly what ``Dataset.save_as`` would write (a test holds this to account).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)

#: pydicom's UID root, under which example data may mint UIDs.
_ROOT = "1.2.826.0.1.3680043.8.498.7"
#: The (fictional) scanner's software writes files with this implementation class.
_IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.7.0.1"
_IMPLEMENTATION_VERSION = "FJV_MR_XA30"
_STUDY_DATE = "20230517"
#: The examination starts at 10:15:02; every time in it is counted from there.
_STUDY_START_SECONDS = 10 * 3600 + 15 * 60 + 2
#: Seconds between the starts of two series.
_SERIES_SECONDS = 317


@dataclass(frozen=True)
class SyntheticPatient:
    """A fictional patient and the people, places and numbers around one examination."""

    name: str = "Nordmann^Kari^Synnøve"
    #: Shaped like a Norwegian national identity number: birth date DDMMYY + 5 digits.
    patient_id: str = "01017012345"
    other_id: str = "FJV-4471923"
    birth_name: str = "Fjeldstad^Kari"
    mother_birth_name: str = "Bakkevold^Ragnhild"
    birth_date: str = "19700101"
    address: str = "Fjellveien 17, 5019 Fjordvik"
    phone: str = "+47 912 34 567"
    email: str = "kari.nordmann@example.no"
    accession: str = "FJVRAD2023051701"
    admission_id: str = "INN-2023-0517-042"
    referring_physician: str = "Halvorsen^Ingrid^^Dr."
    referring_phone: str = "+47 55 00 12 34"
    performing_physician: str = "Fossheim^Torbjørn"
    reading_physician: str = "Kvamme^Sigurd"
    operator: str = "Lindqvist^Marte"
    institution: str = "Fjordvik universitetssjukehus"
    institution_address: str = "Sjukehusvegen 1, 5099 Fjordvik"
    department: str = "Radiologisk avdeling, Fjordvik"
    station: str = "FJV-MR3-CONSOLE"
    serial: str = "MRC-20231"

    @property
    def birth_date_dotted(self) -> str:
        """The birth date as people write it in Norway: ``DD.MM.YYYY``."""
        d = self.birth_date
        return f"{d[6:]}.{d[4:6]}.{d[:4]}"

    def planted_values(self) -> list[str]:
        """Every planted identifying string, as a leak would show it: none may survive.

        Person names are listed by part (a leak may keep one part) when the part is long
        enough not to occur by chance; numbers and places in full.
        """
        names = (self.name, self.birth_name, self.mother_birth_name, self.referring_physician,
                 self.performing_physician, self.reading_physician, self.operator)
        parts = {part for name in names for part in name.replace(" ", "^").split("^")
                 if len(part) >= 4}
        return sorted(parts | {
            self.patient_id, self.other_id, self.birth_date, self.birth_date_dotted,
            self.address.split(",")[0], self.phone, self.email, self.accession,
            self.admission_id, self.referring_phone, "Fjordvik",
            self.institution_address.split(",")[0], self.station, self.serial,
        })


@dataclass(frozen=True)
class _Protocol:
    """One series of the examination: what the console's protocol sets."""

    number: int
    description: str
    scanning_sequence: str
    sequence_variant: str
    sequence_name: str
    acquisition_type: str
    repetition_time: float
    echo_time: float
    inversion_time: float | None
    flip_angle: float
    thickness: float
    b_value: int | None
    #: Signal of (scalp, skull, brain, ventricles) in this contrast.
    contrast: tuple[int, int, int, int]


_PROTOCOLS = (
    _Protocol(1, "t1_mprage_sag_p2_iso", "GR\\IR", "SK\\SP\\MP", "*tfl3d1_16ns", "3D", 2300.0,
              2.98, 900.0, 9.0, 1.0, None, (650, 120, 720, 180)),
    _Protocol(2, "t2_tirm_tra_dark-fluid", "SE\\IR", "SK\\SP\\MP", "*tir2d1_16", "2D", 9000.0,
              81.0, 2500.0, 150.0, 3.0, None, (520, 90, 610, 60)),
    _Protocol(3, "ep2d_diff_tra_b1000", "EP", "SK\\SP", "*ep_b1000t", "2D", 4600.0, 89.0,
              None, 90.0, 4.0, 1000, (140, 25, 310, 90)),
    _Protocol(4, "t2_tse_cor", "SE", "SK\\SP\\OSP", "*tse2d1_15", "2D", 5000.0, 98.0, None,
              150.0, 3.0, None, (480, 70, 420, 1250)),
)

#: Elements that differ from instance to instance; the rest is encoded once per series.
_VARYING = frozenset({
    0x00080013, 0x00080018, 0x00080032, 0x00080033, 0x00081140, 0x00200013, 0x00200032,
    0x00201041, 0x00280106, 0x00280107, 0x0019100E, 0x00291010, 0x7FE00010,
})


def _uid(*parts: int) -> str:
    """A UID of this study's family: the root, then the seed, series and instance."""
    return ".".join([_ROOT, *(str(p) for p in parts)])


def _time(seconds_after_start: float) -> str:
    """A TM value ``seconds_after_start`` into the examination."""
    whole, micro = divmod(round((_STUDY_START_SECONDS + seconds_after_start) * 1_000_000),
                          1_000_000)
    return f"{whole // 3600:02d}{whole // 60 % 60:02d}{whole % 60:02d}.{micro:06d}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


@lru_cache(maxsize=256)
def _image(rows: int, cols: int, level: int, contrast: tuple[int, int, int, int],
           seed: int) -> tuple[bytes, int, int]:
    """A head-like phantom slice: scalp, skull, brain, two ventricles, a little noise.

    ``level`` (0–19) is the slice's height in the head; returns (pixel bytes, min, max).
    """
    y, x = np.mgrid[-1:1:rows * 1j, -1:1:cols * 1j]
    z = (level - 9.5) / 10.5
    size = np.sqrt(max(1 - 0.85 * z * z, 0.05))
    scalp, skull, brain, csf = contrast

    def ellipse(a: float, b: float, cx: float = 0.0) -> np.ndarray:
        return ((x - cx) / (a * size)) ** 2 + (y / (b * size)) ** 2 <= 1

    head, bone, cortex = ellipse(0.74, 0.9), ellipse(0.7, 0.86), ellipse(0.64, 0.8)
    ventricles = ellipse(0.09, 0.3, -0.12) | ellipse(0.09, 0.3, 0.12)
    image = np.zeros((rows, cols))
    image[head] = scalp
    image[bone] = skull
    image[cortex] = brain
    if abs(z) < 0.4:
        image[ventricles & cortex] = csf
    rng = np.random.default_rng([seed, level, *contrast])
    image += np.abs(rng.normal(0, 12, size=image.shape))
    pixels = np.clip(image, 0, 4095).astype("<u2")
    return pixels.tobytes(), int(pixels.min()), int(pixels.max())


def _csa2(tags: Iterable[tuple[str, str, list[str]]]) -> bytes:
    """A Siemens CSA2 header (the "SV10" layout dcm2niix parses) holding ``tags``."""
    tags = list(tags)
    out = [b"SV10\x04\x03\x02\x01", struct.pack("<II", len(tags), 77)]
    for name, vr, values in tags:
        out.append(struct.pack("<64si4siii", name.encode(), len(values), vr.encode(), 0,
                               len(values), 77))
        for value in values:
            data = value.encode("utf-8") + b"\x00"
            out.append(struct.pack("<iiii", len(data), len(data), 77, len(data)))
            out.append(data + b"\x00" * (-len(data) % 4))
    blob = b"".join(out)
    return blob + b"\x00" * (len(blob) % 2)


def _series_dataset(patient: SyntheticPatient, seed: int, protocol: _Protocol, rows: int,
                    cols: int) -> Dataset:
    """The header every instance of one series shares (the varying elements come later)."""
    p = patient
    number = protocol.number
    ds = Dataset()
    # SOP common and general image
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
    ds.InstanceCreationDate = _STUDY_DATE
    ds.InstanceCreatorUID = _uid(seed, 0, 1)
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _STUDY_DATE
    ds.StudyTime = _time(0)
    ds.SeriesTime = _time(series_start(protocol))
    ds.AccessionNumber = p.accession
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = p.institution
    ds.InstitutionAddress = p.institution_address
    ds.ReferringPhysicianName = p.referring_physician
    ds.ReferringPhysicianTelephoneNumbers = p.referring_phone
    ds.TimezoneOffsetFromUTC = "+0200"
    ds.StationName = p.station
    ds.StudyDescription = f"MR CAPUT {p.name.split('^')[0]} {p.birth_date}"
    ds.ProcedureCodeSequence = Sequence([_code("NMR0101", "99FJV", "MR caput")])
    ds.SeriesDescription = protocol.description
    ds.InstitutionalDepartmentName = p.department
    ds.PhysiciansOfRecord = p.referring_physician
    ds.PerformingPhysicianName = p.performing_physician
    ds.NameOfPhysiciansReadingStudy = p.reading_physician
    ds.OperatorsName = p.operator
    ds.ManufacturerModelName = "MAGNETOM Prisma"
    referenced_study = Dataset()
    referenced_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    referenced_study.ReferencedSOPInstanceUID = _uid(seed, 0, 2)
    ds.ReferencedStudySequence = Sequence([referenced_study])
    # Patient
    ds.PatientName = p.name
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = "NO-FNR"
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = "F"
    other = Dataset()
    other.PatientID = p.other_id
    other.IssuerOfPatientID = "FJV-PAS"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.OtherPatientIDs = p.other_id
    ds.OtherPatientNames = p.birth_name
    ds.PatientAge = "053Y"
    ds.PatientSize = 1.68
    ds.PatientWeight = 64.0
    ds.PatientAddress = p.address
    ds.PatientMotherBirthName = p.mother_birth_name
    ds.PatientTelephoneNumbers = p.phone
    ds.AdditionalPatientHistory = (
        f"Pasient {p.name.split('^')[1]} {p.name.split('^')[0]}, f. {p.birth_date_dotted}. "
        "Kontroll etter reseksjon av meningeom.")
    ds.add_new(0x001021C0, "US", 4)  # PregnancyStatus: unknown
    ds.PatientComments = f"Klaustrofobi. Kontakt: {p.email}"
    ds.AdmissionID = p.admission_id
    ds.CurrentPatientLocation = "Nevrokirurgisk post 3, seng 12"
    # MR acquisition
    ds.BodyPartExamined = "HEAD"
    ds.ScanningSequence = protocol.scanning_sequence
    ds.SequenceVariant = protocol.sequence_variant
    ds.ScanOptions = "IR" if protocol.inversion_time else "PFP"
    ds.MRAcquisitionType = protocol.acquisition_type
    ds.SequenceName = protocol.sequence_name
    ds.AngioFlag = "N"
    ds.SliceThickness = protocol.thickness
    ds.RepetitionTime = protocol.repetition_time
    ds.EchoTime = protocol.echo_time
    if protocol.inversion_time is not None:
        ds.InversionTime = protocol.inversion_time
    ds.NumberOfAverages = 1.0
    ds.ImagingFrequency = 123.252078
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = 1
    ds.MagneticFieldStrength = 3.0
    ds.SpacingBetweenSlices = protocol.thickness
    ds.NumberOfPhaseEncodingSteps = rows - 1
    ds.EchoTrainLength = 1 if protocol.scanning_sequence == "EP" else 16
    ds.PercentSampling = 100.0
    ds.PercentPhaseFieldOfView = 100.0
    ds.PixelBandwidth = 1502.0 if protocol.b_value else 240.0
    ds.DeviceSerialNumber = p.serial
    ds.DeviceUID = _uid(seed, 0, 3)
    ds.SoftwareVersions = "syngo MR XA30"
    ds.ProtocolName = protocol.description
    ds.TransmitCoilName = "Body"
    ds.ReceiveCoilName = "Head_32"
    ds.add_new(0x00181310, "US", [0, rows, cols, 0])  # AcquisitionMatrix
    ds.InPlanePhaseEncodingDirection = "COL" if protocol.b_value else "ROW"
    ds.FlipAngle = protocol.flip_angle
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = 0.41
    ds.dBdt = 0.0
    ds.PatientPosition = "HFS"
    # Study, series, frame of reference, image plane
    ds.StudyInstanceUID = _uid(seed)
    ds.SeriesInstanceUID = _uid(seed, number)
    ds.StudyID = "1"
    ds.SeriesNumber = number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = _uid(seed, 999)
    ds.PositionReferenceIndicator = ""
    ds.ImageComments = f"Pasient {p.name.replace('^', ' ')} urolig under opptak"
    # Image pixel and presentation
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [round(230.0 / rows, 6), round(230.0 / cols, 6)]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = max(protocol.contrast) // 2, max(protocol.contrast)
    ds.WindowCenterWidthExplanation = "Algo1"
    ds.LossyImageCompression = "00"
    # Performed procedure step and request
    ds.PerformedStationName = p.station
    ds.PerformedLocation = "MR3, Fjordvik"
    ds.PerformedProcedureStepStartDate = _STUDY_DATE
    ds.PerformedProcedureStepStartTime = _time(0)[:6]
    ds.PerformedProcedureStepID = f"PPS{p.accession[-10:]}"
    ds.PerformedProcedureStepDescription = "MR caput"
    ds.PerformedProtocolCodeSequence = Sequence([_code(f"P{number}", "99FJV",
                                                       protocol.description)])
    ds.CommentsOnThePerformedProcedureStep = (
        f"{p.name.split('^')[0]} fikk 2.5 mg diazepam før undersøkelsen")
    ds.RequestAttributesSequence = Sequence([_request(p, protocol)])
    _add_private(ds, p, protocol)
    # File meta, kept for the per-instance writer
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = _IMPLEMENTATION_CLASS_UID
    ds.file_meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    ds.file_meta.SourceApplicationEntityTitle = "FJVMR3"
    return ds


def _request(p: SyntheticPatient, protocol: _Protocol) -> Dataset:
    """Request attributes: IDs, and the referring physician three sequences deep.

    RequestAttributesSequence > ScheduledProtocolCodeSequence > ProtocolContextSequence holds
    a PNAME content item, as RIS systems send the requester along with the protocol.
    """
    observer = Dataset()
    observer.ValueType = "PNAME"
    observer.ConceptNameCodeSequence = Sequence([_code("121008", "DCM",
                                                       "Person Observer Name")])
    observer.PersonName = p.referring_physician
    scheduled_protocol = _code("NMR0101", "99FJV", "MR caput")
    scheduled_protocol.ProtocolContextSequence = Sequence([observer])
    request = Dataset()
    request.AccessionNumber = p.accession
    request.RequestedProcedureDescription = f"MR caput, {p.name}"
    request.ScheduledProtocolCodeSequence = Sequence([scheduled_protocol])
    request.ScheduledProcedureStepDescription = protocol.description
    request.ScheduledProcedureStepID = p.other_id
    request.RequestedProcedureID = p.accession
    return request


def _add_private(ds: Dataset, p: SyntheticPatient, protocol: _Protocol) -> None:
    """Siemens' private blocks, and a RIS vendor's block of free text."""
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x00191008, "CS", "IMAGE NUM 4")
    ds.add_new(0x00191009, "LO", "1.0")
    ds.add_new(0x0019100B, "DS", "7400")
    if protocol.b_value is not None:
        ds.add_new(0x0019100C, "IS", str(protocol.b_value))
        ds.add_new(0x0019100D, "CS", "DIRECTIONAL")
        ds.add_new(0x0019100E, "FD", [0.0, 0.0, 1.0])  # varied per instance
    ds.add_new(0x00191028, "FD", 30.382)
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00290011, "LO", "SIEMENS MEDCOM HEADER2")
    ds.add_new(0x00291008, "CS", "IMAGE NUM 4")
    ds.add_new(0x00291009, "LO", "20230517")
    ds.add_new(0x00291010, "OB", b"")  # the CSA image header: per instance
    ds.add_new(0x00291018, "CS", "MR")
    ds.add_new(0x00291019, "LO", "20230517")
    ascconv = (
        "### ASCCONV BEGIN ###\n"
        f'tProtocolName\t = ""{protocol.description}""\n'
        f'sPatient.tPatientName\t = ""{p.name}""\n'
        f'sPatient.tPatientID\t = ""{p.patient_id}""\n'
        f"sKSpace.lBaseResolution\t = {ds.Rows}\n"
        f"sSliceArray.asSlice[0].dThickness\t = {protocol.thickness}\n"
        "### ASCCONV END ###"
    )
    ds.add_new(0x00291020, "OB", _csa2([("MrPhoenixProtocol", "UN", [ascconv])]))
    ds.add_new(0x00291160, "LO", "com")
    ds.add_new(0x00330010, "LO", "FJORDVIK RIS 2.1")
    ds.add_new(0x00331010, "LT", (
        f"Pasient {p.name.replace('^', ' ')} ({p.patient_id}), tlf {p.phone}. "
        f"Henvist av {p.referring_physician.replace('^', ' ').strip()}."))
    ds.add_new(0x00331011, "LO", p.admission_id)


def series_start(protocol: _Protocol) -> float:
    """Seconds from the start of the examination to the start of this series."""
    return 8 + _SERIES_SECONDS * (protocol.number - 1)


def _csa_image_header(p: SyntheticPatient, protocol: _Protocol, index: int,
                      slices: int) -> bytes:
    times = [f"{(i * protocol.repetition_time / max(slices, 1)):.1f}" for i in range(3)]
    tags = [
        ("EchoLinePosition", "IS", ["128"]),
        ("SliceNormalVector", "FD", ["0.0", "0.0", "1.0"]),
        ("MosaicRefAcqTimes", "FD", times),
        ("ImaCoilString", "LO", ["HC1-7"]),
        ("ImaComments", "LT", [f"{p.name} {p.birth_date_dotted}"]),
    ]
    if protocol.b_value is not None:
        tags.append(("B_value", "IS", [str(protocol.b_value)]))
        tags.append(("DiffusionGradientDirection", "FD", _gradient(index)))
    return _csa2(tags)


def _gradient(index: int) -> list[str]:
    angle = index * 2.399963  # golden angle: spread directions over the sphere
    z = 1 - 2 * ((index % 30) + 0.5) / 30
    r = (1 - z * z) ** 0.5
    return [f"{r * np.cos(angle):.6f}", f"{r * np.sin(angle):.6f}", f"{z:.6f}"]


class _SeriesWriter:
    """Writes the instances of one series: shared elements encoded once, the rest per file."""

    def __init__(self, ds: Dataset):
        self.ds = correct_ambiguous_vr(ds, True)
        self._encodings = ds.get("SpecificCharacterSet", default_encoding)
        #: Only the elements of _VARYING may change after this: the rest is encoded now.
        tags = ds.keys()  # (iterating a Dataset yields elements, not tags)
        self._shared = {int(tag): self._encode(ds[tag]) for tag in tags
                        if int(tag) not in _VARYING}
        self._meta_parts: tuple[bytes, bytes] | None = None

    def _encode(self, element: DataElement) -> bytes:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, False
        write_data_element(fp, element, self._encodings)
        return fp.getvalue()

    def _file_meta(self, sop_instance_uid: str) -> bytes:
        """Preamble, prefix and file meta; only the SOP instance UID (and so the group
        length) differs between the instances of a series."""
        if self._meta_parts is None:
            meta = self.ds.file_meta
            head = [DataElement(0x00020001, "OB", b"\x00\x01"),
                    DataElement(0x00020002, "UI", meta.MediaStorageSOPClassUID)]
            tail = [DataElement(0x00020010, "UI", meta.TransferSyntaxUID),
                    DataElement(0x00020012, "UI", meta.ImplementationClassUID),
                    DataElement(0x00020013, "SH", meta.ImplementationVersionName),
                    DataElement(0x00020016, "AE", meta.SourceApplicationEntityTitle)]
            self._meta_parts = (b"".join(map(self._encode, head)),
                                b"".join(map(self._encode, tail)))
        head_bytes, tail_bytes = self._meta_parts
        uid = self._encode(DataElement(0x00020003, "UI", sop_instance_uid))
        length = len(head_bytes) + len(uid) + len(tail_bytes)
        group_length = self._encode(DataElement(0x00020000, "UL", length))
        return b"".join((b"\x00" * 128, b"DICM", group_length, head_bytes, uid, tail_bytes))

    def write(self, path: Path) -> None:
        """Write the dataset as it stands now (the caller has set the varying elements)."""
        ds = self.ds
        parts = [self._file_meta(str(ds.SOPInstanceUID))]
        # Elements in ascending tag order, as PS3.5 7.1 requires (sorted as plain ints:
        # pydicom's tags compare in Python, which costs more than the rest of a file).
        for tag in sorted(map(int, ds.keys())):
            shared = self._shared.get(tag)
            parts.append(shared if shared is not None else self._encode(ds[tag]))
        path.write_bytes(b"".join(parts))


def write_mr_study(folder: Path, *, seed: int = 1, n_series: int = 3, slices: int = 20,
                   rows: int = 256, cols: int = 256,
                   patient: SyntheticPatient | None = None) -> list[Path]:
    """Write one study of ``n_series`` series × ``slices`` images; returns the file paths.

    Everything is deterministic in ``seed`` (which also makes the UIDs: another seed is
    another study). Series cycle through T1 MPRAGE, FLAIR, diffusion and T2 TSE. File names
    carry the patient's name, as exports from clinical systems often do, so that a
    de-identifier which copied names over would be caught.
    """
    patient = patient or SyntheticPatient()
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    family = patient.name.split("^")[0]
    first_series = _PROTOCOLS[0].number
    for s in range(n_series):
        base = _PROTOCOLS[s % len(_PROTOCOLS)]
        # More series than protocols: repeats are numbered 11, 12, ... as re-runs are.
        protocol = replace(base, number=base.number + (s // len(_PROTOCOLS)) * 10)
        start = series_start(protocol)
        writer = _SeriesWriter(_series_dataset(patient, seed, protocol, rows, cols))
        ds = writer.ds
        for i in range(slices):
            z = (i - (slices - 1) / 2) * protocol.thickness
            level = round(19 * i / (slices - 1)) if slices > 1 else 10
            pixels, low, high = _image(rows, cols, level, protocol.contrast, seed)
            ds.SOPInstanceUID = _uid(seed, protocol.number, i + 1)
            ds.InstanceNumber = i + 1
            ds.AcquisitionTime = _time(start + i * 0.25)
            ds.InstanceCreationTime = ds.ContentTime = _time(start + 240 + i * 0.01)
            ds.ImagePositionPatient = [-115.0, -115.0, round(z, 3)]
            ds.SliceLocation = round(z, 3)
            ref = Dataset()
            ref.ReferencedSOPClassUID = MRImageStorage
            # Localiser-style reference to the T1 series (within it: to the next slice), so
            # that a de-identifier must map references as it maps the instances' own UIDs.
            ref.ReferencedSOPInstanceUID = _uid(seed, first_series, (i + 1) % slices + 1)
            ds.ReferencedImageSequence = Sequence([ref])
            ds[0x00280106] = DataElement(0x00280106, "US", low)
            ds[0x00280107] = DataElement(0x00280107, "US", high)
            if protocol.b_value is not None:
                ds[0x0019100E] = DataElement(0x0019100E, "FD",
                                             [float(v) for v in _gradient(i)])
            ds[0x00291010] = DataElement(
                0x00291010, "OB", _csa_image_header(patient, protocol, i, slices))
            ds[0x7FE00010] = DataElement(0x7FE00010, "OW", pixels)
            path = folder / f"{family}_S{protocol.number:02d}_I{i + 1:04d}.dcm"
            writer.write(path)
            paths.append(path)
    return paths
