"""Fixtures for tests against a real systemd user manager (see devtools.sandbox).

One sandbox per test session, never one per test: on this kind of host (cgroup v1) only one
user manager may run per machine, and start-up is the slow part. Do not run these tests with
parallel workers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devtools.fakes.telegram_api import FakeBotApi
from devtools.net import free_port
from devtools.sandbox import Sandbox, SandboxUnavailable, wait_for
from devtools.sandbox.waiting import up_when_free
from tests.integration.harness import tmpfs
from tests.integration.installed import UNIT, Installed, install, present

# Another checkout's test run may hold the machine's one sandbox: wait for it this long
# (SANDBOX_WAIT_S=0 fails at once, as before).
WAIT_S = float(os.environ.get("SANDBOX_WAIT_S", "1800"))


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Sandbox]:
    """A running sandbox with the demo fleet ready.

    Skipped, saying why, only where no user manager can run here (systemd or
    dbus-user-session missing: SandboxUnavailable), and under CI=true even that fails
    (tests/ci_skips.py). A manager that dies or does not answer in time (SandboxFailed) is an
    error, never a skip: it is a broken machine, which is what tests must report.
    """
    box = Sandbox(tmp_path_factory.mktemp("sandbox"), dashboard_port=free_port(), restart="no")
    # Registered before `up`, so whatever a failing `up` left behind is still taken down.
    request.addfinalizer(box.down)
    try:
        up_when_free(box, WAIT_S)
    except SandboxUnavailable as exc:
        pytest.skip(f"systemd user-manager sandbox unavailable: {exc}")
    yield box


@pytest.fixture(autouse=True)
def _restore_sandbox_fleet(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the sandbox: faults cleared, failures reset, fleet ready.

    reset-failed matters: the start limit (5 starts in 10 s) counts manual restarts too.
    """
    yield
    # An interrupted session tears this down after pytest has dropped the test's arguments.
    box = (getattr(request.node, "funcargs", None) or {}).get("sandbox")
    if isinstance(box, Sandbox):
        box.restore_fleet()


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    """The fake Telegram Bot API on 127.0.0.1 (real HTTP); see tests/integration/bot.py."""
    async with FakeBotApi() as api:
        yield api


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs."""
    with tmpfs(tmp_path / "full", "64k") as mount:
        yield mount


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: room to start in, quick to fill."""
    with tmpfs(tmp_path / "small", "1m") as mount:
        yield mount


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "uninstalls: removes the shared installation, so runs after every other test"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that uninstall (or install one of their own, then uninstall) go last: every other
    test that drives the installation shares it. A CI run once failed 12 tests when the
    hardened unit's test, between two of them, removed it."""
    items.sort(key=lambda item: item.get_closest_marker("uninstalls") is not None)


@pytest.fixture(scope="session")
def installation(sandbox: Sandbox) -> Iterator[Installed]:
    """install_services.sh, once per session (a venv and its wheels: about 25 s each time);
    the modules that drive the installed supervisor share it through `installed`."""
    with install(sandbox) as inst:
        yield inst


@pytest.fixture(scope="module")
def installed(installation: Installed) -> Iterator[Installed]:
    """The installation, running for this module's tests and stopped after them: no other
    module's test meets an installed supervisor watching (and restarting) the demo fleet.

    A module that finds it stopped starts it on its good config, as the installer left it.
    """
    inst = installation
    present(inst)
    if inst.unit_file.exists() and inst.show("ActiveState")["ActiveState"] != "active":
        inst.config.write_text(inst.good_config())
        inst.sandbox.systemctl("reset-failed", UNIT, check=False)
        inst.sandbox.systemctl("start", UNIT)
        wait_for(lambda: inst.health() is not None, 30, "the installed supervisor to answer")
    yield inst
    inst.sandbox.systemctl("stop", UNIT, check=False)
