"""What `supervisor doctor` reads from this machine: sockets, files, /proc, SQLite, HTTP.

Each function gathers facts and never raises for what it finds (a missing file, a refused
connection are facts); `ops.judge` turns them into findings.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import supervisor
from supervisor import config
from supervisor.ops.judge import UNIT, BreakerEvent, DirFacts
from supervisor.ops.reading import lock_holder

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
LINGER_DIR = Path("/var/lib/systemd/linger")
_TIMEOUT_S = 5.0


def port_free(host: str, port: int) -> bool:
    """Whether a listener could bind host:port now (as the daemon does: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def lock_pid(state_dir: Path) -> int | None:
    """The PID of the instance holding `<state_dir>/lock` (read from /proc/locks, never taken:
    taking it, even for a moment, could make a daemon starting now exit 73)."""
    path = state_dir / "lock"
    try:
        st = os.stat(path)
        locks = Path("/proc/locks").read_text()
        text = path.read_text().strip()
    except OSError:
        return None
    written = int(text) if text.isdigit() else None
    return lock_holder(locks, os.major(st.st_dev), os.minor(st.st_dev), st.st_ino, written)


def linger(user: str) -> tuple[str | None, bool]:
    """logind's answer (`yes`/`no`, None when it cannot be asked) and whether the file is there."""
    answer = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["loginctl", "show-user", user, "-p", "Linger", "--value"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
        if done.returncode == 0:
            answer = done.stdout.strip()
    return answer, (LINGER_DIR / user).exists()


def state_dir(path: Path, need_bytes: int) -> DirFacts:
    """Owner, a real write (a temp file made and removed: as root, access() says yes to
    almost anything) and free space of the state directory, or of where it would be made."""
    owner = None
    with contextlib.suppress(OSError):
        owner = path.stat().st_uid
    where = path if owner is not None else _nearest_existing(path)
    error = _write_error(where, path)
    free = None
    with contextlib.suppress(OSError):
        st = os.statvfs(where)
        free = st.f_bavail * st.f_frsize
    return DirFacts(str(path), owner, os.geteuid(), error, free, need_bytes)


def _nearest_existing(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


def _write_error(where: Path, wanted: Path) -> str | None:
    if not where.is_dir():
        return f"{where} is not a directory, so {wanted} cannot be created"
    probe = where / f".doctor-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return f"{exc.strerror} (creating a file in {where})"
    try:
        os.write(fd, b"x")
    except OSError as exc:
        return f"{exc.strerror} (writing in {where})"
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            probe.unlink()
    return None


def history(path: Path) -> tuple[bool, str | None, int, int]:
    """(exists, error, events, bytes) of the history file, opened read-only and quick-checked."""
    if not path.exists():
        return False, None, 0, 0
    try:
        with contextlib.closing(_read_only(path)) as conn:
            (check,) = conn.execute("PRAGMA quick_check(1)").fetchone()
            if check != "ok":
                return True, f"quick_check: {check}", 0, 0
            (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.Error as exc:
        return True, str(exc), 0, 0
    size = sum(_size(Path(f"{path}{suffix}")) for suffix in ("", "-wal"))
    return True, None, int(events), size


def breaker_events(path: Path, limit: int = 200) -> list[BreakerEvent] | None:
    """The breaker's events, newest first; None when there is no readable history."""
    if not path.exists():
        return None
    query = "SELECT id, summary, data FROM events WHERE kind = 'breaker' ORDER BY id DESC LIMIT ?"
    try:
        with contextlib.closing(_read_only(path)) as conn:
            rows = conn.execute(query, (limit,)).fetchall()
    except sqlite3.Error:
        return None
    return [BreakerEvent(r[0] / 1e6, bool(json.loads(r[2]).get("open")), r[1]) for r in rows]


def _read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=2.0)
    conn.execute("PRAGMA busy_timeout = 2000")
    return conn


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def get_json(url: str) -> dict[str, Any]:
    """A JSON document over HTTP (a 503 /health still carries one); OSError or ValueError."""
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            raise OSError(f"HTTP {exc.code} {exc.reason}") from None
        body = exc.read()
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise ValueError(f"{url}: not a JSON object")
    return doc


def journal() -> tuple[bool, str | None, str | None]:
    """(journald runs, our last line, the error) from `journalctl --user -u`."""
    if not JOURNAL_SOCKET.exists():
        return False, None, None
    try:
        done = subprocess.run(
            ["journalctl", "--user", "-u", UNIT, "-n", "1", "-o", "cat", "--no-pager", "-q"],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return True, None, str(exc)
    if done.returncode != 0:
        return True, None, done.stderr.strip() or f"exit {done.returncode}"
    return True, done.stdout.strip(), None


def shipped_unit() -> str | None:
    """The unit template this version ships: installed beside the venv, or in the checkout."""
    for where in (
        Path(sys.prefix) / "share" / "sidecar-supervisor" / "units" / UNIT,
        Path(supervisor.__file__).resolve().parents[1] / "units" / UNIT,
    ):
        with contextlib.suppress(OSError):
            return where.read_text()
    return None


def installed_unit(fragment: str | None) -> tuple[str | None, str | None]:
    """(path, text) of the installed unit: systemd's FragmentPath, else the usual place."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    for where in (fragment, str(Path(base) / "systemd" / "user" / UNIT)):
        if where:
            try:
                return where, Path(where).read_text()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    return where, None
    return None, None


def secret_values(cfg: config.Config | None) -> list[str]:
    """The secrets in force: never to be shown or archived (an unreadable token file is
    reported by the Telegram check)."""
    if cfg is None:
        return []
    values = [cfg.http.api_key.get_secret_value()] if cfg.http.api_key else []
    if cfg.alerts.telegram is not None:
        with contextlib.suppress(OSError):
            values.append(cfg.alerts.telegram.read_token())
    return values
