"""DIMSE status codes the gateway answers with (PS3.4 Annex B and C, PS3.7 Annex C)."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    SUCCESS = 0x0000
    PENDING = 0xFF00
    #: Storage: the instance could not be written (disk full, permissions...).
    OUT_OF_RESOURCES = 0xA700
    #: Storage: the data set cannot be parsed or lacks a UID needed to file it.
    CANNOT_UNDERSTAND = 0xC000
    #: Query/retrieve: the identifier is not one the service can answer.
    IDENTIFIER_DOES_NOT_MATCH = 0xA900
    #: C-FIND, C-MOVE, C-GET: failed while processing (the index could not be read).
    UNABLE_TO_PROCESS = 0xC001
    #: C-MOVE: the destination AE title is not registered for the data.
    MOVE_DESTINATION_UNKNOWN = 0xA801
    #: C-FIND etc.: the calling AE is not registered for any project.
    NOT_AUTHORIZED = 0x0124
