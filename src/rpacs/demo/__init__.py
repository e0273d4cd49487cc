"""Demo data: a synthetic clinical MR study with planted identifying values, and the demo."""

from .run import DemoReport, PlantedSearch, run_demo
from .synthetic import SyntheticPatient, write_mr_study

__all__ = ["DemoReport", "PlantedSearch", "SyntheticPatient", "run_demo", "write_mr_study"]
