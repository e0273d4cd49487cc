"""The de-identification engine on datasets built here: nesting, UIDs, dates, private
elements, overrides, unlisted attributes, transfer syntaxes, determinism."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

from rpacs.deid import (
    Deidentifier,
    Identity,
    Option,
    Profile,
    date_offset_days,
    deidentify_instance,
    is_valid_uid,
    read_instance,
    shift_da,
    study_id_for,
    uid_for,
    write_instance,
)

from .. import dicom_factory as f

SECRET = b"\x02" * 32
OFFSET = -400
IDENTITY = Identity("P-0001", "PROJ1", "baseline")


def _engine(profile: Profile | None = None, secret: bytes = SECRET) -> Deidentifier:
    return Deidentifier(profile or Profile.default(), secret, IDENTITY, OFFSET)


def _roundtrip(ds: Dataset, engine: Deidentifier | None = None,
               syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """Encode, read, de-identify, write and read back as a user of the file would."""
    out, _ = deidentify_instance(f.encoded(ds, syntax), "test.dcm", engine or _engine())
    return dcmread(BytesIO(out))


# -- sequences and UIDs ----------------------------------------------------------------


def test_three_levels_of_sequences_are_deidentified_and_references_resolve():
    ds = f.mr_dataset()
    deepest = Dataset()
    deepest.PersonName = "Testesen^Ola"
    deepest.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    deepest.ObservationDateTime = "20230517101500"
    deepest.add_new(0x00290010, "LO", "ACME PRIVATE")
    deepest.add_new(0x00291001, "LO", "Testesen private")
    middle = Dataset()
    middle.ContentSequence = Sequence([deepest])
    middle.add_new(0x0040A078, "SQ", Sequence())  # AuthorObserverSequence, X
    top = Dataset()
    top.ContentSequence = Sequence([middle])
    ds.ContentSequence = Sequence([top])
    original_sop = ds.SOPInstanceUID
    back = _roundtrip(ds)
    leaf = back.ContentSequence[0].ContentSequence[0].ContentSequence[0]
    assert "Testesen" not in str(leaf.PersonName)
    assert leaf.ReferencedSOPInstanceUID == back.SOPInstanceUID == uid_for(SECRET, original_sop)
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert leaf.ObservationDateTime == "20220412101500"
    assert (0x0029, 0x0010) not in leaf and (0x0029, 0x1001) not in leaf
    assert "AuthorObserverSequence" not in back.ContentSequence[0]


def test_uids_are_keyed_deterministic_and_valid():
    a, b = uid_for(SECRET, "1.2.3"), uid_for(SECRET, "1.2.3")
    assert a == b and a.startswith("2.25.") and is_valid_uid(a)
    assert uid_for(b"\x03" * 32, "1.2.3") != a
    assert uid_for(SECRET, "1.2.3\x00") == uid_for(SECRET, "1.2.3 ") == a
    for leading_zero in ("1.02.3", "1.2.03.4", "1.2.840.0010"):
        assert not is_valid_uid(leading_zero)
        assert is_valid_uid(uid_for(SECRET, leading_zero))
    assert not is_valid_uid("1." + "2" * 63) and not is_valid_uid("1..2")
    assert not is_valid_uid("") and not is_valid_uid("1.2.a")
    study_id = study_id_for(a)
    assert len(study_id) <= 16 and study_id == study_id_for(a) != study_id_for(b + "1")


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_text_appended_to_a_kept_class_uid_goes():
    """A class UID is kept as it is, but a name typed after it is no part of it."""
    ds = f.mr_dataset()
    junk = b"1.2.840.10008.5.1.4.1.1.4 Wenche Warn"
    ds._dict[BaseTag(0x00080016)] = RawDataElement(BaseTag(0x00080016), "UI", len(junk),
                                                   junk, 0, False, True)
    back = _roundtrip(ds)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert b"Wenche" not in deidentify_instance(f.encoded(ds), "t.dcm", _engine())[0]
    # With the Retain UIDs option every UID is kept so: only the UID.
    junk = b"1.2.3.4.5 Hansen"
    ds._dict[BaseTag(0x00080018)] = RawDataElement(BaseTag(0x00080018), "UI", len(junk),
                                                   junk, 0, False, True)
    retained = _engine(Profile(options=Profile.default().options | {Option.RETAIN_UIDS}))
    back = _roundtrip(ds, retained)
    assert (back.SOPClassUID, back.SOPInstanceUID) == ("1.2.840.10008.5.1.4.1.1.4",
                                                       "1.2.3.4.5")


def test_uids_from_files_with_invalid_uids_become_valid():
    ds = f.mr_dataset()
    ds.SeriesInstanceUID = "1.2.840.0010.0.05"
    back = _roundtrip(ds)
    assert is_valid_uid(back.SeriesInstanceUID)
    assert back.SeriesInstanceUID == uid_for(SECRET, "1.2.840.0010.0.05")


def test_same_study_merges_within_a_project_and_differs_across_projects():
    one = _roundtrip(f.mr_dataset(f.Instance(number=1)))
    two = _roundtrip(f.mr_dataset(f.Instance(number=2)))
    assert one.StudyInstanceUID == two.StudyInstanceUID
    assert one.SOPInstanceUID != two.SOPInstanceUID
    other = _roundtrip(f.mr_dataset(f.Instance(number=1)), _engine(secret=b"\x09" * 32))
    assert other.StudyInstanceUID != one.StudyInstanceUID
    assert other.StudyID != one.StudyID


def test_well_known_and_class_uids_stay_and_other_unlisted_uids_are_mapped():
    ds = f.mr_dataset()
    ds.add_new(0x00089123, "UI", "1.2.3.4.5.99")  # CreatorVersionUID, not in the table
    ds.SynchronizationFrameOfReferenceUID = "1.2.840.10008.15.1.1"  # U row, well-known
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-A0100", "SRT", "Brain"
    code.CodingSchemeUID = "2.16.840.1.113883.6.96"  # names a coding scheme
    ds.AnatomicRegionSequence = Sequence([code])
    back = _roundtrip(ds)
    assert back.SOPClassUID == MRImageStorage
    assert back.ReferencedImageSequence[0].ReferencedSOPClassUID == MRImageStorage
    assert back.SynchronizationFrameOfReferenceUID == "1.2.840.10008.15.1.1"
    assert back.AnatomicRegionSequence[0].CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert back[0x00089123].value == uid_for(SECRET, "1.2.3.4.5.99")
    kept = _roundtrip(ds, _engine(Profile(options=frozenset({Option.RETAIN_UIDS}))))
    assert kept[0x00089123].value == "1.2.3.4.5.99"
    assert kept.SOPInstanceUID == ds.SOPInstanceUID


# -- dates -----------------------------------------------------------------------------


def test_dates_shift_times_stay_and_intervals_and_age_are_kept():
    ds = f.mr_dataset()
    ds.AcquisitionDate = "20230519"
    ds.InstanceCreationDate = "20230520"
    ds.AcquisitionDateTime = "20230519083000.5+0200"
    ds.add_new(0x00080404, "DT", "20230601")  # ItemInventoryDateTime, unlisted: shifted too
    back = _roundtrip(ds)
    assert back.StudyDate == shift_da(f.STUDY_DATE, OFFSET) == "20220412"
    assert back.AcquisitionDate == "20220414" and back.InstanceCreationDate == "20220415"
    assert back.AcquisitionDateTime == "20220414083000.5+0200"
    assert back[0x00080404].value == "20220427"
    assert back.StudyTime == "101500"
    assert back.PatientAge == "045Y"
    assert back.PatientBirthDate == ""
    assert back.LongitudinalTemporalInformationModified == "MODIFIED"


def test_full_dates_are_kept_as_they_are():
    profile = Profile(options=frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES}))
    back = _roundtrip(f.mr_dataset(), _engine(profile))
    assert back.StudyDate == f.STUDY_DATE
    assert "LongitudinalTemporalInformationModified" not in back


def test_date_offsets_per_project_and_per_participant():
    project = date_offset_days(SECRET)
    assert -3650 <= project <= -365
    assert date_offset_days(SECRET) == project != date_offset_days(b"\x04" * 32)
    offsets = {date_offset_days(SECRET, f"P-{n:04d}") for n in range(50)}
    assert len(offsets) > 40 and all(-3650 <= o <= -365 for o in offsets)


# -- private elements ------------------------------------------------------------------


def test_private_elements_removed_except_the_safe_list_whose_binary_is_cleaned():
    ds = f.mr_dataset()
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")  # b-value: safe
    ds.add_new(0x00191099, "LO", "Testesen")  # same creator, not on the list
    ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
    ds.add_new(0x00431001, "LO", "not safe")  # the whole block goes, creator too
    back = _roundtrip(ds)
    assert (0x0009, 0x1001) not in back and (0x0009, 0x0010) not in back
    assert (0x0043, 0x0010) not in back and (0x0043, 0x1001) not in back
    assert back[0x0019100C].value == "1000" and (0x0019, 0x1099) not in back
    assert back[0x00190010].value == "SIEMENS MR HEADER"
    csa = back[0x00291010].value
    original = f.mr_dataset()[0x00291010].value
    assert csa[:len(original)] == original.replace(b"Testesen", b"********").replace(
        b"Ola", b"***")
    assert back[0x00290010].value == "SIEMENS CSA HEADER"
    codes = [item.CodeValue for item in back.DeidentificationMethodCodeSequence]
    assert "113111" in codes and "Retain Safe Private" in back.DeidentificationMethod


def test_safe_elements_are_found_in_any_block():
    ds = f.mr_dataset()
    del ds[0x00290010], ds[0x00291010]
    ds.add_new(0x00290011, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291110, "OB", b"SV10 Testesen ")
    ds.add_new(0x00291010, "OB", b"not safe")  # block 10 has no creator
    back = _roundtrip(ds)
    assert back[0x00291110].value == b"SV10 ******** "
    assert (0x0029, 0x1010) not in back


def test_no_private_element_kept_means_no_retain_safe_private_code():
    ds = f.mr_dataset()
    del ds[0x00290010], ds[0x00291010]
    back = _roundtrip(ds)
    codes = [item.CodeValue for item in back.DeidentificationMethodCodeSequence]
    assert "113111" not in codes and not any(e.tag.group & 1 for e in back)


def test_project_safe_private_addition_is_kept_and_cleaned():
    profile = Profile.from_yaml(
        'safe_private: [{creator: "ACME PRIVATE", group: "0009", element: "01"}]')
    back = _roundtrip(f.mr_dataset(), _engine(profile))
    assert back[0x00091001].value == "*** *** private note"
    assert back[0x00090010].value == "ACME PRIVATE"


# -- overrides -------------------------------------------------------------------------


def test_overrides_win_over_the_table():
    profile = Profile.from_yaml(
        """
        options: []
        tags:
          - {tag: StationName, action: set, value: SCANNER1}
          - {tag: "(0018,1000)", action: keep}
          - {tag: ImageComments, action: regex-keep, pattern: "scanned|Ola"}
          - {tag: StudyDate, action: keep}
          - {tag: Modality, action: empty}
          - {tag: SeriesDescription, action: remove}
          - {tag: ReferencedImageSequence, action: keep}
          - {tag: StudyDescription, action: set, value: Oslo collaboration}
        """
    )
    ds = f.mr_dataset()
    del ds.StudyDescription
    back = _roundtrip(ds, _engine(profile))
    assert back.StationName == "SCANNER1"
    assert back.DeviceSerialNumber == "SN-4711-AB"  # X/Z/D in the Basic profile
    assert back.ImageComments == "Ola scanned"
    assert back.StudyDate == f.STUDY_DATE  # keep means exactly as it is
    assert back.Modality == ""
    assert "SeriesDescription" not in back
    # A kept sequence stays where the table would remove it, but its items are still
    # de-identified: the reference is mapped like the instance it points to.
    ref = back.ReferencedImageSequence[0]
    original = ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert ref.ReferencedSOPInstanceUID == uid_for(SECRET, original) != original
    assert "InstitutionName" in back and back.InstitutionName == "PROJ1"
    # set adds the element where the instance has none.
    assert back.StudyDescription == "Oslo collaboration"


def test_a_kept_sequence_still_loses_names_inside_its_items():
    profile = Profile.from_yaml("tags: [{tag: ReferencedImageSequence, action: keep}]")
    ds = f.mr_dataset()
    ds.ReferencedImageSequence[0].add_new(0x00081070, "PN", "Testesen^Ola")  # Operators' Name
    back = _roundtrip(ds, _engine(profile))
    assert "OperatorsName" not in back.ReferencedImageSequence[0] or \
        back.ReferencedImageSequence[0].OperatorsName == ""


# -- attributes the table does not list ------------------------------------------------


def test_unlisted_names_go_unlisted_text_is_cleaned_unknown_tags_go():
    ds = f.mr_dataset()
    ds.add_new(0x00142006, "PN", "Testesen^Ola")  # EvaluatorName, not in the table
    # Unlisted short text loses the patient's own values, not codes or numbers.
    ds.add_new(0x00080070, "LO", "Testesen Medical 20240101")  # Manufacturer
    ds.add_new(0x00181020, "LO", "syngo MR E11 12345678")  # SoftwareVersions: stays
    # Unlisted free text is cleaned in full: own values and patterns.
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "seen"  # listed (X): removed wherever it is
    item.add_new(0x00100218, "UT", "Ola Testesen, 12.03.1961, +47 22 33 44 55")  # unlisted
    ds.add_new(0x00400275, "SQ", Sequence([item]))  # RequestAttributesSequence
    code = Dataset()
    code.CodeValue = "39607008"
    code.CodingSchemeDesignator = "SCT"
    code.CodeMeaning = "Lung"
    ds.AnatomicRegionSequence = Sequence([code])
    ds.add_new(0x00101999, "UN", b"Testesen")  # in no dictionary: removed
    # A URL the table does not list loses the patient's own values too.
    ds.add_new(0x00081190, "UR", f"http://pacs.example.no/wado?patientID={f.PATIENT_ID}"
               f"&acc={f.ACCESSION}&name=Testesen")  # RetrieveURL
    back = _roundtrip(ds)
    assert back.RetrieveURL == "http://pacs.example.no/wado?patientID=***&acc=***&name=***"
    assert back[0x00142006].value == ""
    assert back.Manufacturer == "*** Medical 20240101"
    assert back.SoftwareVersions == "syngo MR E11 12345678"
    assert back.AnatomicRegionSequence[0].CodeValue == "39607008"
    assert back.RequestAttributesSequence[0][0x00100218].value == "*** ***, ***, ***"
    assert 0x00101999 not in back


def test_the_same_bytes_are_judged_per_patient():
    # One Deidentifier sees two patients: a value clean for one is not clean for the other.
    engine = _engine()
    first = f.mr_dataset(f.Instance(number=1))
    second = f.mr_dataset(f.Instance(number=2, patient_id="OTHER-1"))
    second.PatientName = "Hansen^Per"
    for ds in (first, second):
        ds.ImageComments = "Per Hansen called"
    one = _roundtrip(first, engine)
    two = _roundtrip(second, engine)
    assert one.ImageComments == "Per Hansen called"
    assert two.ImageComments == "*** *** called"


# -- encodings, bytes and determinism ----------------------------------------------------


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_every_native_transfer_syntax_round_trips(syntax: str):
    ds = f.mr_dataset(rows=32, cols=32)
    ds.ContentSequence = Sequence([Dataset()])
    ds.ContentSequence[0].PersonName = "Testesen^Ola"
    ds.ContentSequence[0].ReferencedSOPInstanceUID = ds.SOPInstanceUID
    original = dcmread(BytesIO(f.encoded(ds, syntax)))
    back = _roundtrip(ds, syntax=syntax)
    assert back.file_meta.TransferSyntaxUID == syntax
    assert back.original_encoding == original.original_encoding
    assert back.PixelData == original.PixelData
    assert back.PatientID == "P-0001" and back.PatientIdentityRemoved == "YES"
    assert back.ContentSequence[0].ReferencedSOPInstanceUID == back.SOPInstanceUID
    assert "Testesen" not in str(back.ContentSequence[0].PersonName)
    assert back.Rows == 32 and back.StudyDate == "20220412"
    assert back[0x00291010].value.startswith(b"SV10")


def test_unchanged_values_are_never_decoded_and_output_is_deterministic():
    data = f.encoded(f.mr_dataset(rows=64, cols=64))
    ds = read_instance(data, "a.dcm")
    pixels = ds.get_item(0x7FE00010)
    engine = _engine()
    engine.deidentify(ds)
    assert ds.get_item(0x7FE00010) is pixels and isinstance(pixels, RawDataElement)
    first = write_instance(ds)
    assert write_instance(ds) == first
    assert deidentify_instance(data, "a.dcm", engine)[0] == first
    assert deidentify_instance(data, "a.dcm", _engine())[0] == first  # a fresh engine too


def test_identity_values_are_encoded_in_the_instances_character_set():
    ds = f.mr_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    engine = Deidentifier(Profile.default(), SECRET, Identity("P-0001", "PROJ1", "oppfølging"),
                          OFFSET)
    back = _roundtrip(ds, engine)
    assert back.ReferringPhysicianName == "oppfølging"
