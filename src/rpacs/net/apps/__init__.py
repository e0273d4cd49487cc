"""Thin command lines of the gateway, in the style of pynetdicom's apps."""

from .scp import scp_command

__all__ = ["scp_command"]
