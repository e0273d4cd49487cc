"""Every file shipped with pydicom and pydicom-data: read or refused, never crashing; what is
read de-identifies, writes, reads back, and keeps its pixel data byte for byte."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset, dcmread
from pydicom.dataelem import RawDataElement

from rpacs.deid import Deidentifier, Identity, Profile, read_instance, write_instance
from rpacs.deid.io import _read_plain
from rpacs.errors import DicomInputError

from .. import dicom_factory as f
from .test_io import assert_same_read

#: Bulk data that must come out as it went in: pixel data of every kind, waveforms,
#: spectroscopy. (Encapsulated Document is not among them: the table replaces it, D.)
BULK_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009, 0x54001010, 0x56000020, 0x56000010}
PARTICIPANT = "RW-001"


def _shipped_files() -> list[Path]:
    return sorted(p for folder in f.shipped_data_folders()
                  for p in folder.rglob("*") if p.is_file())


def _bulk(ds: Dataset, path: str = "") -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every bulk element, at any depth, as stored (never decoded)."""
    for tag in list(ds._dict):
        raw = ds._dict[tag]
        if int(tag) in BULK_TAGS:
            yield f"{path}{int(tag):08X}", raw.value if isinstance(raw, RawDataElement) \
                else ds[tag].value
        elif (raw.VR == "SQ" or (raw.VR in (None, "UN") and not int(tag) >> 16 & 1
                                 and ds[tag].VR == "SQ")):
            for index, item in enumerate(ds[tag].value or ()):
                yield from _bulk(item, f"{path}{int(tag):08X}[{index}]/")


def _texts(ds: Dataset) -> Iterator[str]:
    """Every text value of the data set and its file meta, at any depth."""
    for element in [*ds.file_meta, *ds.iterall()]:
        value = element.value
        if isinstance(value, str | pydicom.valuerep.PersonName):
            yield str(value)
        elif isinstance(value, list | pydicom.multival.MultiValue):
            yield from (str(v) for v in value)


def _quietly(function, *args):  # the shipped files include deliberately odd values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def _identity(ds: Dataset) -> set[str]:
    """The original PatientName and PatientID, when long enough to mean anything."""
    values = {str(ds.get(keyword, "") or "").strip() for keyword in ("PatientName", "PatientID")}
    return {v for v in values if len(v) > 3}  # a PatientID "1" would only find numbers


@pytest.mark.slow
def test_every_shipped_file_is_read_or_refused_and_keeps_its_pixels():
    files = _shipped_files()
    assert len(files) > 200, "pydicom's test files and pydicom-data must both be installed"
    engine = Deidentifier(Profile.default(), b"\x05" * 32, Identity(PARTICIPANT, "RWPROJ", "e"),
                          -900)
    checked, fast, refused = 0, 0, {}
    for path in files:
        data = path.read_bytes()
        try:
            ds = _quietly(read_instance, data, path.name)
        except DicomInputError as exc:
            refused[path.name] = exc.reason
            continue
        plain = _quietly(_read_plain, data)
        if plain is not None:
            assert_same_read(plain, _quietly(dcmread, BytesIO(data)))
            fast += 1
        # Icon Image Sequence is X in the table: its pixels go with it.
        before = {path: value for path, value in _quietly(list, _bulk(ds))
                  if not path.startswith("00880200")}
        identity = _quietly(_identity, ds)
        _quietly(engine.deidentify, ds)
        out = _quietly(write_instance, ds)
        back = _quietly(dcmread, BytesIO(out))
        assert back.PatientIdentityRemoved == "YES", path.name
        assert back.PatientID == back.PatientName == PARTICIPANT, path.name
        assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID, path.name
        after = dict(_quietly(list, _bulk(back)))
        assert after == before, f"{path.name}: bulk data changed"
        assert not identity & set(_quietly(list, _texts(back))), path.name
        checked += 1
    print(f"{checked} de-identified ({fast} by the fast reader), {len(refused)} refused:")
    for name, reason in sorted(refused.items()):
        print(f"  {name}: {reason}")
    assert checked > 180 and fast > 100
    assert all(reason and "Traceback" not in reason for reason in refused.values())
