"""What install_services.sh put into the sandbox, and how to drive it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from devtools.net import free_port
from devtools.sandbox import Sandbox
from tests.integration.harness import get_json

REPO = Path(__file__).resolve().parents[2]
UNIT = "sidecar-supervisor.service"
LAST_WORD = "sidecar-supervisor-last-word.service"


class Installed:
    """What the installer put into the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.port = free_port()
        self.config = sandbox.config_home / "sidecar-supervisor" / "config.toml"
        self.unit_file = sandbox.config_home / "systemd" / "user" / UNIT
        self.last_word_file = self.unit_file.with_name(LAST_WORD)
        self.venv = sandbox.home / ".local" / "share" / "sidecar-supervisor" / "venv"
        self.config_after_install: str | None = None  # the config as the installer left it

    def good_config(self) -> str:
        return (
            f'[http]\nport = {self.port}\n[[targets]]\nname = "trader"\nunit = "trader.service"\n'
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **self.sandbox.env(),
            # The sandbox has its own HOME: reuse the real pip cache so no wheel is fetched twice.
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
            "PYTHON": sys.executable,
        }
        return subprocess.run(
            [str(REPO / "install_services.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def show(self, *props: str) -> dict[str, str]:
        return self.sandbox.show(UNIT, *props)

    def health(self) -> tuple[int, object] | None:
        try:
            return get_json(f"http://127.0.0.1:{self.port}/health", timeout=1)
        except OSError:
            return None


@contextlib.contextmanager
def install(sandbox: Sandbox) -> Iterator[Installed]:
    """Install with a config of our own (the installer must keep it); uninstall after."""
    inst = Installed(sandbox)
    inst.config.parent.mkdir(parents=True, exist_ok=True)
    inst.config.write_text(inst.good_config())
    result = inst.run()
    assert result.returncode == 0, result.stdout + result.stderr
    inst.config_after_install = inst.config.read_text()  # the tests that share it change it
    try:
        yield inst
    finally:
        inst.run("--uninstall")


def present(inst: Installed) -> None:
    """Installed again if it went with the sandbox's home (test_sandbox takes the sandbox
    down and up), on its good config."""
    if not inst.unit_file.exists():
        inst.config.parent.mkdir(parents=True, exist_ok=True)
        inst.config.write_text(inst.good_config())
        result = inst.run()
        assert result.returncode == 0, result.stdout + result.stderr
