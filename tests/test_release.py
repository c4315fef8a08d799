"""The release is named the same everywhere: `supervisor --version`, the installed
distribution's metadata and the newest release in CHANGELOG.md (Keep a Changelog)."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

from supervisor import __version__

ROOT = Path(__file__).resolve().parents[1]


def released() -> list[str]:
    """The versions CHANGELOG.md has a section for, newest first."""
    text = (ROOT / "CHANGELOG.md").read_text()
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)


def test_the_command_names_the_newest_release_in_the_changelog() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "supervisor", "--version"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    assert run.stdout.strip() == f"supervisor {__version__}"
    assert released()[0] == __version__ == "0.2.0"
    assert importlib.metadata.version("sidecar-supervisor") == __version__


def test_the_changelog_keeps_an_unreleased_section_and_links_every_release() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.index("## [Unreleased]") < text.index(f"## [{__version__}]")
    for version in released():
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.M), version
