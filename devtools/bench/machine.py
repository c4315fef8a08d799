"""What a run ran on: the machine, the tools' versions, the commit and a digest of the code."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from devtools.bench.settings import REPO, VENV_PYTHON
from supervisor import __version__


def first_line(cmd: list[str]) -> str:
    """The first line `cmd` prints (stdout, else stderr), or why it could not run."""
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{cmd[0]}: {exc}"
    return (run.stdout or run.stderr).strip().splitlines()[0] if (run.stdout or run.stderr) else ""


def source_hash() -> str:
    """A digest of the supervisor's source: the code every supervisor of the run imports."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "supervisor").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, Any]:
    """Cores, CPU, kernel, tool versions, commit (+changes when supervisor/ is dirty)."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--", "supervisor"])
    wrk = first_line(["wrk", "-v"]).split(" Copyright")[0]
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": first_line([str(VENV_PYTHON), "--version"]),
        "systemd": first_line(["systemctl", "--version"]),
        "monit": first_line(["monit", "-V"]).replace("This is ", ""),
        "wrk": wrk,
        "supervisor": __version__,
        "commit": commit + ("+changes" if dirty else ""),
        "source": source_hash(),
        "loadavg_start": loadavg(),
    }
