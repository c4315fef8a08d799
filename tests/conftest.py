"""Guard rails for every test: under CI=true a skip fails the run (see tests/ci_skips.py)."""

from tests.ci_skips import pytest_make_collect_report, pytest_runtest_makereport

__all__ = ["pytest_make_collect_report", "pytest_runtest_makereport"]
