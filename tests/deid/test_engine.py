"""The de-identification engine on datasets built here: nesting, UIDs, dates, clean, private."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import MRImageStorage

from rpacs.deid import (
    Deidentifier,
    Identity,
    Profile,
    TextCleaner,
    date_offset_days,
    is_valid_uid,
    shift_da,
    shift_dt,
    study_id_for,
    uid_for,
)
from rpacs.errors import InvalidInputError

from .. import dicom_factory as f

SECRET = b"\x02" * 32
IDENTITY = Identity("P-0001", "PROJ1", "baseline")


def _engine(profile: Profile | None = None, secret: bytes = SECRET) -> Deidentifier:
    return Deidentifier(profile or Profile.default(), secret, IDENTITY, -400)


def test_three_levels_of_sequences_are_deidentified_and_references_resolve():
    ds = f.mr_dataset()
    deepest = Dataset()
    deepest.PersonName = "Testesen^Ola"
    deepest.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    deepest.ObservationDateTime = "20230517101500"
    middle = Dataset()
    middle.ContentSequence = Sequence([deepest])
    top = Dataset()
    top.ContentSequence = Sequence([middle])
    ds.ContentSequence = Sequence([top])
    original_sop = ds.SOPInstanceUID
    _engine().deidentify(ds)
    leaf = ds.ContentSequence[0].ContentSequence[0].ContentSequence[0]
    assert not leaf.get("PersonName") or leaf.PersonName != "Testesen^Ola"
    assert leaf.ReferencedSOPInstanceUID == ds.SOPInstanceUID == uid_for(SECRET, original_sop)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert not leaf.ObservationDateTime.startswith("2023")


def test_uids_are_keyed_deterministic_and_valid():
    a, b = uid_for(SECRET, "1.2.3"), uid_for(SECRET, "1.2.3")
    assert a == b and a.startswith("2.25.") and is_valid_uid(a)
    assert uid_for(b"\x03" * 32, "1.2.3") != a
    assert uid_for(SECRET, "1.2.3\x00") == a  # padding is not part of the UID
    for leading_zero in ("1.02.3", "1.2.03.4", "1.2.840.0010"):
        assert not is_valid_uid(leading_zero)
        assert is_valid_uid(uid_for(SECRET, leading_zero))
    assert len(study_id_for(a)) <= 16


def test_same_study_merges_within_a_project_and_differs_across_projects():
    one, two = f.mr_dataset(f.Instance(number=1)), f.mr_dataset(f.Instance(number=2))
    _engine().deidentify(one)
    _engine().deidentify(two)
    assert one.StudyInstanceUID == two.StudyInstanceUID
    other = f.mr_dataset(f.Instance(number=1))
    _engine(secret=b"\x09" * 32).deidentify(other)
    assert other.StudyInstanceUID != one.StudyInstanceUID
    assert other.StudyID != one.StudyID


def test_dates_shift_times_stay_and_age_is_kept():
    assert shift_da("20230517", -400) == "20220412"
    assert shift_da("20230517\\20230518", -1) == "20230516\\20230517"
    assert shift_da("garbage", -1) == ""
    assert shift_dt("20230517101500.123+0100", -1) == "20230516101500.123+0100"
    ds = f.mr_dataset()
    _engine().deidentify(ds)
    assert ds.StudyDate == shift_da(f.STUDY_DATE, -400)
    assert ds.StudyTime == "101500"
    assert ds.PatientAge == "045Y"
    assert ds.PatientBirthDate == ""


def test_date_offsets_per_project_and_per_participant():
    project = date_offset_days(SECRET)
    assert -3650 <= project <= -365
    assert date_offset_days(SECRET) == project
    assert date_offset_days(SECRET, "P-0001") != date_offset_days(SECRET, "P-0002")


def test_clean_cuts_the_instances_own_values_and_identifying_patterns():
    cleaner = TextCleaner.from_dataset(f.mr_dataset())
    text = ("Testesen, OLA scanned; id 12057812345, other HUS-778899, acc ACC20230517X, "
            "born 12.05.1978 / 1978-05-12, fnr 120578 12345, mail ola@example.org")
    cleaned = cleaner.clean(text)
    for leaked in ("Testesen", "OLA", "12057812345", "HUS-778899", "ACC20230517X",
                   "12.05.1978", "1978-05-12", "120578 12345", "ola@example.org"):
        assert leaked not in cleaned
    assert cleaned.startswith("***, *** scanned")
    assert cleaner.clean("t1_mprage_sag 3D") == "t1_mprage_sag 3D"


def test_private_elements_removed_except_the_safe_list_and_that_cleaned():
    ds = f.mr_dataset()
    _engine().deidentify(ds)
    assert (0x0009, 0x1001) not in ds and (0x0009, 0x0010) not in ds
    csa = ds[0x00291010].value
    assert b"Testesen" not in csa and len(csa) == len(f.mr_dataset()[0x00291010].value)
    assert csa.startswith(b"SV10")


def test_project_safe_private_addition_and_overrides():
    profile = Profile.from_yaml(
        """
        tags:
          - {tag: StationName, action: set, value: SCANNER1}
          - {tag: "(0018,1000)", action: keep}
          - {tag: ImageComments, action: regex-keep, pattern: "scanned"}
        safe_private:
          - {creator: "ACME PRIVATE", group: "0009", element: "01"}
        """
    )
    ds = f.mr_dataset()
    _engine(profile).deidentify(ds)
    assert ds.StationName == "SCANNER1"
    assert ds.DeviceSerialNumber == "SN-4711-AB"
    assert ds.ImageComments == "scanned"
    assert ds[0x00091001].value == "*** *** private note"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("tags: [{tag: NotAKeyword, action: keep}]", "tags[0].tag"),
        ("tags: [{tag: StationName, action: smash}]", "tags[0].action"),
        ("tags: [{tag: StationName, action: regex-keep, pattern: '('}]", "tags[0].pattern"),
        ("options: [no-such-option]", "options[0]"),
        ("safe_private: [{creator: X, group: '0010', element: '01'}]", "safe_private[0]"),
        ("tags: [: bad", "not valid YAML"),
    ],
)
def test_bad_profiles_name_the_key(text: str, needle: str):
    with pytest.raises(InvalidInputError) as caught:
        Profile.from_yaml(text)
    assert needle in str(caught.value)


def test_profile_round_trips_through_yaml():
    profile = Profile.from_yaml("tags: [{tag: StationName, action: keep}]")
    assert Profile.from_yaml(profile.to_yaml()) == profile


def test_sop_class_is_kept_and_instance_uids_outside_the_table_are_mapped():
    ds = f.mr_dataset()
    ds.add_new(0x00089123, "UI", "1.2.3.4.5.99")  # CreatorVersionUID, not in the table
    _engine().deidentify(ds)
    assert ds.SOPClassUID == MRImageStorage
    assert ds[0x00089123].value == uid_for(SECRET, "1.2.3.4.5.99")
