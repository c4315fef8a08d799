"""An unprivileged sandbox: its manager and fleet run as a normal user the harness makes, in a
cgroup subtree delegated to that user, beside the suite's own sandbox (see
`devtools.sandbox.delegate`). The soak runs the supervisor this way too (docs/RELIABILITY.md,
"Soak")."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.net import free_port
from devtools.sandbox import PROGRAMS, ProcId, Sandbox, SandboxUnavailable
from devtools.sandbox.delegate import SANDBOX_USER, slug, subtree_dirs
from devtools.sandbox.procs import _systemd_cgroup

pytestmark = pytest.mark.sandbox


def _uid(proc: ProcId) -> int:
    return os.stat(f"/proc/{proc.pid}").st_uid


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory in /tmp: pytest's own temporary directories are private to root, and the
    account must pass through every directory above its sandbox."""
    path = Path(tempfile.mkdtemp(prefix="sidecar-unprivileged-"))
    path.chmod(0o755)  # mkdtemp's is private
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_unprivileged_sandbox_runs_beside_the_suites_own(
    sandbox: Sandbox, public_dir: Path
) -> None:
    box = Sandbox(public_dir / "sandbox", dashboard_port=free_port(), user=SANDBOX_USER)
    box.up()
    try:
        assert box.account is not None
        procs = box.processes()
        # holder, manager, dbus-daemon and the three demo programs at least, all the account's
        assert len(procs) >= 6
        assert {_uid(p) for p in procs} == {box.account.uid}, [(p, _uid(p)) for p in procs]
        subtree = f"/{slug(box.root)}/app.slice/"
        for program in PROGRAMS:
            assert (_systemd_cgroup(box.main_pid(program)) or "").startswith(subtree)
        # Both managers at once: the suite's own (root, the cgroup root) still works.
        assert all(sandbox.ready(program) for program in PROGRAMS)

        # Why the suite's own sandbox stays root (README, "Two commands"): root, the user
        # pytest and its in-process supervisor run as, is refused as a client of the
        # account's manager, on its private socket and on its session bus.
        as_root = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **box.env()}
        manager = ["systemctl", "--user", "is-active", "trader.service"]
        systemd1 = "org.freedesktop.systemd1"
        path, iface = "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
        bus = ["busctl", "--user", "get-property", systemd1, path, iface, "Version"]
        for cmd, why in ((manager, "Operation not permitted"), (bus, "not connected")):
            refused = subprocess.run(
                cmd, env=as_root, capture_output=True, text=True, timeout=30, check=False
            )
            assert refused.returncode != 0 and why in refused.stderr, (cmd, refused.stderr)

        # Its manager takes orders from the account: a restart gives a new main process.
        old = box.main_pid("trader")
        box.systemctl("restart", "trader.service")
        box.wait_ready("trader")
        assert box.main_pid("trader") != old
    finally:
        box.down()

    assert not any(p.alive() for p in procs), [p for p in procs if p.alive()]
    assert not any(path.exists() for path in subtree_dirs(slug(box.root)))
    assert not Path(box.root).exists()
    assert all(sandbox.ready(program) for program in PROGRAMS)


def test_a_sandbox_the_account_cannot_reach_is_refused_saying_why(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    private = tmp_path_factory.mktemp("private")  # under pytest's root-only directory
    private.chmod(0o700)
    box = Sandbox(private / "sandbox", dashboard_port=free_port(), user=SANDBOX_USER)

    with pytest.raises(
        SandboxUnavailable, match=r"cannot reach .* \(a directory on the way is private\)"
    ):
        box.up()
    assert not (private / "sandbox").exists()
