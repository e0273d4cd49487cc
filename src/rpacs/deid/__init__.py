"""De-identification of DICOM datasets by PS3.15 profiles (depends on pydicom and PyYAML only)."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .clean import TextCleaner, identifying_values
    from .dates import date_offset_days, shift_da, shift_dt
    from .enum import Action, Option
    from .identity import Identity
    from .io import deidentify_instance, looks_like_dicom, read_instance, write_instance
    from .private import SafePrivateElement, default_safe_private
    from .profile import DEFAULT_OPTIONS, Profile, TagOverride, parse_tag, table
    from .raw import (
        PlainFile,
        RawResult,
        deidentify_raw,
        keep_by_size,
        parse_items,
        parse_plain,
        splice_item,
        write_plain,
    )
    from .sop import IMPLEMENTATION_CLASS_UID, Deidentifier, keeps_uid
    from .uid import is_valid_uid, study_id_for, uid_for

__all__ = [
    "DEFAULT_OPTIONS",
    "IMPLEMENTATION_CLASS_UID",
    "Action",
    "Deidentifier",
    "Identity",
    "Option",
    "PlainFile",
    "Profile",
    "RawResult",
    "SafePrivateElement",
    "TagOverride",
    "TextCleaner",
    "date_offset_days",
    "default_safe_private",
    "deidentify_instance",
    "deidentify_raw",
    "identifying_values",
    "is_valid_uid",
    "keep_by_size",
    "keeps_uid",
    "looks_like_dicom",
    "parse_items",
    "parse_plain",
    "parse_tag",
    "read_instance",
    "shift_da",
    "shift_dt",
    "splice_item",
    "study_id_for",
    "table",
    "uid_for",
    "write_instance",
    "write_plain",
]

# Lazy: the pure parts (date offsets, the Identity a work plan carries) are used by the
# import's parent process, which must not load pydicom for them.
__getattr__, __dir__ = lazy_exports(__name__, {
    ".clean": ("TextCleaner", "identifying_values"),
    ".dates": ("date_offset_days", "shift_da", "shift_dt"),
    ".enum": ("Action", "Option"),
    ".identity": ("Identity",),
    ".io": ("deidentify_instance", "looks_like_dicom", "read_instance", "write_instance"),
    ".private": ("SafePrivateElement", "default_safe_private"),
    ".profile": ("DEFAULT_OPTIONS", "Profile", "TagOverride", "parse_tag", "table"),
    ".raw": ("PlainFile", "RawResult", "deidentify_raw", "keep_by_size", "parse_items",
             "parse_plain", "splice_item", "write_plain"),
    ".sop": ("IMPLEMENTATION_CLASS_UID", "Deidentifier", "keeps_uid"),
    ".uid": ("is_valid_uid", "study_id_for", "uid_for"),
})
