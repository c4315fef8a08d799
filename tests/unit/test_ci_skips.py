"""Under CI=true a skip fails the run; outside CI it stays a skip with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("frobnicator is not installed")

@pytest.fixture
def sandbox():
    pytest.skip("systemd user-manager sandbox unavailable: no systemd")

def test_needs_the_sandbox(sandbox):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_to_fail():
    assert False

def test_passes():
    pass
"""


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-rsfE", "-q"]
    cmd += ["-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)]
    return subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in done.stdout
    assert "skipped under CI=true, which must run every test: frobnicator" in done.stdout
    assert "must run every test: systemd user-manager sandbox unavailable" in done.stdout
    assert " skipped" not in done.stdout.splitlines()[-1]


def test_outside_ci_a_skip_stays_a_skip_with_its_reason(tmp_path: Path) -> None:
    done = _run(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout
    assert "frobnicator is not installed" in done.stdout
