"""An unprivileged sandbox: the account its manager runs as, and the cgroup subtree handed to it.

On a real install `systemd --user` runs as a normal user, in the cgroup subtree the system
manager delegated to ``user@UID.service``. Here PID 1 is not systemd, so root (the harness) plays
that part, and only that part: it makes the account, creates one subtree per sandbox in the
name=systemd and the unified hierarchy (cgroup v1 hybrid; on a pure v2 host, the one
hierarchy), gives both to the account the way systemd's ``Delegate=`` does (the directory and
its ``cgroup.procs``, ``tasks``, ``cgroup.subtree_control``, ``cgroup.threads``), and moves the
manager's holder into them before the manager starts. The manager then takes that subtree as its
root: its units live below it, not in the host's cgroup root, so such a sandbox runs beside
another (a soak beside the test suite).

A root process cannot talk to a user manager of another UID (systemd refuses its private socket
and its bus calls), so every client call of such a sandbox runs as the account too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.sandbox.procs import SandboxError, SandboxUnavailable

CGROUP = Path("/sys/fs/cgroup")
SYSTEM_PYTHON = Path("/usr/bin/python3")
_CODE = ("devtools", "supervisor")  # the packages the demo programs import
SANDBOX_USER = "sidecar-sandbox"
_HIERARCHIES = ("systemd", "unified")
_DELEGATED_FILES = ("cgroup.procs", "tasks", "cgroup.subtree_control", "cgroup.threads")


@dataclass(frozen=True)
class Account:
    """The unprivileged user a sandbox's manager, fleet and supervisor run as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def find(cls, name: str) -> Account | None:
        """The account `name`, or None when it does not exist (yet)."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def ensure(cls, name: str) -> Account:
        """The account `name`, made (a system user without a login) when missing."""
        found = cls.find(name)
        if found is not None:
            return found
        if os.geteuid() != 0:
            raise SandboxUnavailable(f"user {name!r} is missing and only root may create it")
        cmd = ["useradd", "--system", "--user-group", "--no-create-home"]
        cmd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
        made = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = cls.find(name)
        if found is None:
            raise SandboxUnavailable(f"cannot create user {name!r}: {made.stderr.strip()}")
        return found

    def as_user(self) -> dict[str, Any]:
        """`subprocess` arguments that run a child as this account, with no extra groups."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def give(self, *paths: Path) -> None:
        """Hand `paths` (recursively) to this account."""
        for top in paths:
            os.chown(top, self.uid, self.gid)
            for dirpath, dirs, files in os.walk(top):
                for name in (*dirs, *files):
                    os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)

    def can_read(self, path: Path) -> bool:
        """True when this account can reach and read `path` (every parent searchable)."""
        return self._test("-r", path)

    def can_enter(self, path: Path) -> bool:
        """True when this account can reach the directory `path` and enter it."""
        return self._test("-x", path)

    def _test(self, flag: str, path: Path) -> bool:
        probe = subprocess.run(
            ["test", flag, str(path)], check=False, capture_output=True, **self.as_user()
        )
        return probe.returncode == 0


def copy_code(repo: Path, to: Path) -> None:
    """Our packages, copied where the account can read them (a checkout under /root is not)."""
    shutil.rmtree(to, ignore_errors=True)
    for package in _CODE:
        shutil.copytree(repo / package, to / package, ignore=shutil.ignore_patterns("__pycache__"))


def slug(root: Path) -> str:
    """The cgroup name of the sandbox under `root`: one per root, stable across runs."""
    return "sidecar-sandbox-" + hashlib.sha256(str(root).encode()).hexdigest()[:12]


def subtree_dirs(name: str) -> list[Path]:
    """The sandbox's cgroup directory in every hierarchy systemd uses on this host."""
    hybrid = [CGROUP / h for h in _HIERARCHIES if (CGROUP / h / "cgroup.procs").exists()]
    return [top / name for top in (hybrid or [CGROUP])]


def delegate(name: str, account: Account) -> list[Path]:
    """Create the sandbox's subtree in each hierarchy and hand it to `account`."""
    dirs = subtree_dirs(name)
    for path in dirs:
        try:
            path.mkdir(exist_ok=True)
            os.chown(path, account.uid, account.gid)
            for file in _DELEGATED_FILES:
                if (path / file).exists():
                    os.chown(path / file, account.uid, account.gid)
        except OSError as exc:
            why = f"cannot delegate cgroup {path} to {account.name}: {exc}"
            raise SandboxUnavailable(why) from exc
    return dirs


def enter(pid: int, dirs: list[Path]) -> None:
    """Move `pid` (still root's) into the delegated subtree of every hierarchy."""
    for path in dirs:
        try:
            (path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            raise SandboxError(f"cannot move pid {pid} into {path}: {exc}") from exc


def release(dirs: list[Path]) -> None:
    """rmdir the (empty) subtree a stopped manager leaves; busy parts are left alone."""
    for top in dirs:
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
