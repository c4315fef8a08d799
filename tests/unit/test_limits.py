"""At start the soft descriptor limit is raised to the hard one (in a child process, so
this test's own limits stay as they are)."""

from __future__ import annotations

import subprocess
import sys

import pytest

RAISE = "from supervisor.runtime.limits import raise_nofile; print(*raise_nofile())"


def limited(soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    cmd = ["prlimit", f"--nofile={soft}:{hard}", "--", sys.executable, "-c", RAISE]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(("soft", "hard", "after"), [(256, 4096, 4096), (1024, 1024, 1024)])
def test_soft_limit_goes_to_the_hard_limit(soft: int, hard: int, after: int) -> None:
    result = limited(soft, hard)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(soft), str(after)]
