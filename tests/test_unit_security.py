"""The shipped unit is hardened: `systemd-analyze security --offline=yes` scores it 4.0 or
below (0 is locked down, 10 wide open; 0.1.0's unit scored 9.4), as a system service and as
a user service. That everything still works under it is shown by the install tests
(tests/integration/test_citizen.py and friends run the installed unit in the sandbox)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 4.0


def exposure(unit: Path, *mode: str, env: dict[str, str] | None = None) -> float:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    run = subprocess.run(
        [tool, "security", "--offline=yes", *mode, "--threshold=100", str(unit)],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout)
    assert found, run.stdout + run.stderr
    return float(found.group(1))


@pytest.fixture
def installed_unit(tmp_path: Path) -> Path:
    """The unit with its paths filled in, as install_services.sh writes it."""
    text = (ROOT / "units" / "sidecar-supervisor.service").read_text()
    venv, config = "/home/me/.local/share/sidecar-supervisor/venv", "/home/me/c.toml"
    path = tmp_path / "sidecar-supervisor.service"
    path.write_text(text.replace("@VENV@", venv).replace("@CONFIG@", config))
    return path


def test_systemd_analyze_security_scores_the_unit_at_most_4(installed_unit: Path) -> None:
    assert exposure(installed_unit) <= LIMIT


def test_as_a_user_service_too(installed_unit: Path, tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    assert exposure(installed_unit, "--user", env={"XDG_RUNTIME_DIR": str(runtime)}) <= LIMIT
