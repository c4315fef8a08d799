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


LEAN = """
import os
from supervisor.runtime import limits
os.environ["YARL_NO_EXTENSIONS"] = ""  # set by the user (to "" : compiled): left alone
with limits.lean_imports():
    import aiohttp.web
loaded = [line.split()[-1] for line in open("/proc/self/maps") if ".so" in line]
print(sorted({p.split("site-packages/")[-1].split("/")[0] for p in loaded if "_c." in p
              or "_frozenlist" in p or "_http_parser" in p}))
print(sorted(n for n in os.environ if n.endswith("_NO_EXTENSIONS")))
"""


def test_the_helpers_load_their_pure_python_code_and_the_environment_is_put_back() -> None:
    """In a fresh interpreter: frozenlist and propcache load no compiled module, yarl's is
    kept because the variable was the user's, aiohttp's parser stays compiled; afterwards the
    environment holds only what the user set."""
    result = subprocess.run(
        [sys.executable, "-c", LEAN], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    modules, switches = result.stdout.splitlines()
    assert modules == "['aiohttp', 'yarl']"
    assert switches == "['YARL_NO_EXTENSIONS']"
