"""The web app and JSON API: pages for researchers, the same actions for scripts."""

from .app import app_from_environment, create_app

__all__ = ["app_from_environment", "create_app"]
