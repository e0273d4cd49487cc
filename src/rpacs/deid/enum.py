"""Enumerations of the de-identification profile: actions and options (PS3.15 E.1)."""

from __future__ import annotations

import enum


class Action(enum.Enum):
    """What is done to an attribute (PS3.15 E.1.1 action codes)."""

    DUMMY = "D"  # replace with a non-zero-length dummy consistent with the VR
    ZERO = "Z"  # replace with zero length
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"  # keep what is safe, replace what could identify
    UID = "U"  # replace with an internally consistent UID


class Option(enum.Enum):
    """Profile options: (table column, CID 7050 code value, code meaning, YAML name)."""

    CLEAN_PIXEL_DATA = (None, "113101", "Clean Pixel Data Option", "clean-pixel-data")
    CLEAN_VISUAL_FEATURES = (
        None, "113102", "Clean Recognizable Visual Features Option", "clean-visual-features")
    CLEAN_GRAPHICS = ("cleanGraphOpt", "113103", "Clean Graphics Option", "clean-graphics")
    CLEAN_STRUCTURED_CONTENT = (
        "cleanStructContOpt", "113104", "Clean Structured Content Option",
        "clean-structured-content")
    CLEAN_DESCRIPTORS = ("cleanDescOpt", "113105", "Clean Descriptors Option",
                         "clean-descriptors")
    RETAIN_LONGITUDINAL_FULL_DATES = (
        "rtnLongFullDatesOpt", "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
        "retain-longitudinal-full-dates")
    RETAIN_LONGITUDINAL_MODIFIED_DATES = (
        "rtnLongModifDatesOpt", "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
        "retain-longitudinal-modified-dates")
    RETAIN_PATIENT_CHARACTERISTICS = (
        "rtnPatCharsOpt", "113108", "Retain Patient Characteristics Option",
        "retain-patient-characteristics")
    RETAIN_DEVICE_IDENTITY = ("rtnDevIdOpt", "113109", "Retain Device Identity Option",
                              "retain-device-identity")
    RETAIN_UIDS = ("rtnUIDsOpt", "113110", "Retain UIDs Option", "retain-uids")
    RETAIN_SAFE_PRIVATE = ("rtnSafePrivOpt", "113111", "Retain Safe Private Option",
                           "retain-safe-private")
    RETAIN_INSTITUTION_IDENTITY = ("rtnInstIdOpt", "113112",
                                   "Retain Institution Identity Option",
                                   "retain-institution-identity")

    @property
    def column(self) -> str | None:
        return self.value[0]

    @property
    def code(self) -> str:
        return self.value[1]

    @property
    def meaning(self) -> str:
        return self.value[2]

    @property
    def yaml_name(self) -> str:
        return self.value[3]

    @classmethod
    def from_name(cls, name: str) -> Option:
        for option in cls:
            if name in (option.yaml_name, option.name, option.column, option.code):
                return option
        raise KeyError(name)


#: The Basic Application Level Confidentiality Profile itself (CID 7050).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
