"""Under CI a skip is a failure: a CI run must run every test, or say which it could not.

Outside CI a test skips, saying why, where a tool or the sandbox is missing (a laptop without
systemd still runs the unit tests). Under `CI=true` (set by `.ci/run`) that same skip would let
a broken machine pass with dozens of tests never run, so it is reported as a failure with the
reason. An expected failure (`xfail`) is not a skip and is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

TRUE = frozenset({"1", "true", "yes"})


def in_ci() -> bool:
    """True when the environment says this is a CI run (`CI=true`, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in TRUE


def _reason(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: why"); anything else is shown as it is.
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_the_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        report.outcome = "failed"
        why = _reason(report.longrepr)
        report.longrepr = f"skipped under CI=true, which must run every test: {why}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test skipped (in setup or in its body) fails under CI."""
    report = yield
    _fail_the_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module skipped whole (a skip at import time) fails under CI too."""
    report = yield
    _fail_the_skip(report)
    return report
