"""Receiving an uploaded file or a request body within a size limit, before parsing anything."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from starlette.datastructures import UploadFile

from ..errors import InvalidInputError, TooLargeError

_CHUNK = 1 << 20


def _too_large(limit: int) -> TooLargeError:
    return TooLargeError(f"the upload is larger than {limit // 2**20} MB, the limit of "
                         "this server (review_upload_max_mb)")


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request's body, refused (TooLargeError, 413) once it is larger than ``limit``.

    The declared length is checked before a byte is read and the body counted as it
    comes, so a body that lies about its length is stopped too: the API's small uploads
    (a coupling list, a spec) must not be read whole into memory up to the server-wide
    limit, which is the zip review's.
    """
    message = f"{what} is larger than {_size(limit)}, the limit of this server"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(message)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLargeError(message)
    return bytes(body)


def _size(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 2**10} KiB"


async def receive_upload(request: Request, folder: Path, limit: int,
                         form_field: str | None = None) -> Path:
    """Write the request's file to ``folder/upload.zip`` and return its path.

    The declared length is checked before a byte is read. A form upload (``form_field``)
    is parsed by Starlette, which spools it to a temporary file; a raw body (the API) is
    streamed straight into the folder, counted as it comes.
    """
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise InvalidInputError("the upload must state its length (Content-Length)")
    if int(declared) > limit + 64 * 1024:  # room for the form's own fields
        raise _too_large(limit)
    target = folder / "upload.zip"
    written = 0
    with target.open("wb") as out:
        if form_field is None:
            async for chunk in request.stream():
                written += len(chunk)
                if written > limit:
                    raise _too_large(limit)
                out.write(chunk)
        else:
            form = await request.form()
            upload = form.get(form_field)
            if not isinstance(upload, UploadFile):
                raise InvalidInputError(f"{form_field}: choose a zip file to upload")
            while chunk := await upload.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise _too_large(limit)
                out.write(chunk)
    if written == 0:
        raise InvalidInputError("the upload is empty")
    return target
