"""The wheel ships the daemon and nothing else: no sandbox, demo fleet or benchmark."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_daemon(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
         "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"supervisor"}
    # The shipped unit, for `supervisor doctor` to compare the installed one with.
    data = [n.split("/", 2)[2] for n in names if n.split("/")[0].endswith(".data")]
    assert data == ["share/sidecar-supervisor/units/sidecar-supervisor.service"]
    assert "supervisor/app/daemon.py" in names
    assert not [n for n in names if "sandbox" in n or "demo" in n or "bench" in n]
    # The status page ships as package data: no CDN, no build step.
    for page in ("index.html", "page.js", "page.css"):
        assert f"supervisor/api/static/{page}" in names
