"""Demo data: a synthetic clinical MR study with planted identifying values, and the demo."""

from .login import DEMO_USER, demo_login
from .run import DemoReport, PlantedSearch, run_demo
from .synthetic import SyntheticPatient, write_mr_study

__all__ = [
    "DEMO_USER",
    "DemoReport",
    "PlantedSearch",
    "SyntheticPatient",
    "demo_login",
    "run_demo",
    "write_mr_study",
]
