"""rpacs: a research PACS that takes clinical DICOM into de-identified project storage."""

__version__ = "0.1.0"

__all__ = ["__version__"]
