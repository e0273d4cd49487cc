"""A small PNG of one image, shown as its window centre/width would show it.

Pixel data is decoded by pydicom's pixel handlers, which read compressed transfer syntaxes
(JPEG, JPEG-LS, JPEG 2000, RLE) through pylibjpeg and Pillow. The middle frame stands for a
multi-frame image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.pixels import apply_modality_lut

from ..deid import quiet  # noqa: F401  (pydicom's value warnings off)

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIZE = 160


def _first(value: object) -> float | None:
    """The first of a multi-valued window setting (the one a viewer shows first)."""
    if value is None:
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None  # type: ignore[arg-type,index]
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _window(ds: Dataset, pixels: np.ndarray) -> tuple[float, float]:
    """(lowest, highest) value shown: the stored window, else the 0.5-99.5 % range."""
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is not None and width is not None and width >= 1:
        return centre - width / 2, centre + width / 2
    low, high = np.percentile(pixels, [0.5, 99.5]) if pixels.size else (0.0, 1.0)
    return float(low), float(max(high, low + 1))


def _grey_to_8bit(ds: Dataset, frame: np.ndarray) -> np.ndarray:
    values = apply_modality_lut(frame, ds).astype(np.float64)
    low, high = _window(ds, values)
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0) * 255.0
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":  # white is low
        scaled = 255.0 - scaled
    return scaled.astype(np.uint8)


def render_png(ds: Dataset, size: int = THUMBNAIL_SIZE) -> bytes:
    """The middle frame of ``ds`` as a PNG at most ``size`` pixels on its longer side.

    Raises whatever pydicom raises for pixel data it cannot decode; the caller decides what
    stands in for the picture then.
    """
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    index = frames // 2 if frames > 1 else None
    pixels = ds.pixel_array if index is None else ds.pixel_array[index]
    if samples == 1:
        image = Image.fromarray(_grey_to_8bit(ds, pixels), mode="L")
    else:
        # pydicom hands colour images over as RGB; other depths than 8 bits are scaled.
        if pixels.dtype != np.uint8:
            top = float(pixels.max()) or 1.0
            pixels = (pixels.astype(np.float64) / top * 255.0).astype(np.uint8)
        image = Image.fromarray(pixels[..., :3], mode="RGB")
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
