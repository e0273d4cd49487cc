"""Previews of stored images: series thumbnails rendered with their window settings."""

from .render import THUMBNAIL_SIZE, render_png
from .service import series_thumbnail

__all__ = ["THUMBNAIL_SIZE", "render_png", "series_thumbnail"]
