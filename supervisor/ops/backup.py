"""`supervisor backup` and `supervisor restore`: one archive with the history, the state and
the config (secrets left out).

The history is copied with SQLite's online backup API, so the copy is consistent while the
daemon writes. A restore takes the state directory's instance lock for its whole run, so it
refuses while a supervisor runs there, and no supervisor starts half-way through it; what it
replaces is moved aside, never deleted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import sqlite3
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

from supervisor import __version__, config
from supervisor.ops import archive, host
from supervisor.runtime.state import InstanceLock, private_dir, write_atomic
from supervisor.times import iso

STATE_FILE = "state.json"  # runtime.state's file name in the state directory
_CHUNK = 1 << 20


class BackupError(Exception):
    """The backup or restore could not be done; nothing was changed."""


def backup(cfg: config.Config, config_raw: bytes, dest: Path, now: float) -> list[str]:
    """Write the archive to `dest` (mode 0600, whole or not at all); returns what it holds."""
    config_text, removed = archive.strip_secrets(
        config_raw.decode("utf-8", "replace"), host.secret_values(cfg)
    )
    said = [f"config: {len(config_raw):,} bytes, left out: {', '.join(removed) or 'nothing'}"]
    contents: dict[str, Any] = {}
    dest = dest.expanduser().absolute()
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".sidecar-backup-") as tmp:
        copy = Path(tmp) / archive.HISTORY
        source = cfg.state_dir / archive.HISTORY
        if source.exists():
            events, spans, first, last = _copy_history(source, copy)
            contents["history"] = {"events": events, "spans": spans}
            said.append("history: " + archive.history_summary(events, spans, first, last))
        else:
            said.append(f"history: none ({source} does not exist)")
        state = _read_state(cfg.state_dir / STATE_FILE)
        if state is not None:
            said.append("state: " + archive.state_summary(json.loads(state)))
        else:
            said.append("state: none")
        manifest = {
            "format": archive.FORMAT,
            "created": now,
            "host": socket.gethostname(),
            "version": __version__,
            "state_dir": str(cfg.state_dir),
            "left_out": removed,
            **contents,
        }
        part = Path(tmp) / "archive.tar.gz"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add(tar, archive.MANIFEST, json.dumps(manifest, indent=2).encode(), now)
            _add(tar, archive.CONFIG, config_text.encode(), now)
            if state is not None:
                _add(tar, archive.STATE, state, now)
            if copy.exists():
                tar.add(copy, arcname=archive.HISTORY, filter=_plain)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(part, dest)
    return said


def _copy_history(source: Path, copy: Path) -> tuple[int, int, float | None, float | None]:
    """A consistent copy (SQLite's backup API reads one snapshot), made a single file."""
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=10.0)) as src,
            contextlib.closing(sqlite3.connect(copy)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # no -wal beside the copy
            return _history_counts(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the history {source}: {exc}") from None


def _history_counts(conn: sqlite3.Connection) -> tuple[int, int, float | None, float | None]:
    events, first, last = conn.execute("SELECT count(*), min(id), max(id) FROM events").fetchone()
    (spans,) = conn.execute("SELECT count(*) FROM spans").fetchone()
    scale = 1_000_000
    return events, spans, first and first / scale, last and last / scale


def _read_state(path: Path) -> bytes | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"cannot read the state {path}: {exc.strerror}") from None
    try:
        if not isinstance(json.loads(raw), dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise BackupError(f"the state {path} is unusable ({exc}): not archived") from None
    return raw


def _add(tar: tarfile.TarFile, name: str, data: bytes, now: float) -> None:
    info = _plain(tarfile.TarInfo(name))
    info.size, info.mtime = len(data), int(now)
    tar.addfile(info, io.BytesIO(data))


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def restore(state_dir: Path, config_path: Path, source: Path, now: float) -> list[str]:
    """Put the archive back; AlreadyRunningError while a supervisor runs on `state_dir`."""
    lock = InstanceLock(state_dir)
    lock.acquire()  # held throughout: no supervisor starts on a half-restored directory
    try:
        with _open(source) as tar:
            members = _members(tar)
            manifest = json.loads(_read(tar, members, archive.MANIFEST))
            if manifest.get("format") != archive.FORMAT:
                raise BackupError(f"{source}: archive format {manifest.get('format')!r} unknown")
            said = [f"archive: made {_when(manifest)} on {manifest.get('host', '?')}"]
            if archive.HISTORY in members:
                said.append(_restore_history(tar, members[archive.HISTORY], state_dir, now))
            if archive.STATE in members:
                said.append(_restore_state(_read(tar, members, archive.STATE), state_dir, now))
            said.append(_restore_config(_read(tar, members, archive.CONFIG), config_path, manifest))
        return said
    finally:
        lock.release()


@contextlib.contextmanager
def _open(source: Path) -> Any:
    try:
        with tarfile.open(source, "r:gz") as tar:
            yield tar
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read the archive {source}: {exc}") from None


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """Only the known names, only regular files: nothing is extracted by a path it names."""
    found = {m.name: m for m in tar.getmembers() if m.isfile() and m.name in archive.MEMBERS}
    for needed in (archive.MANIFEST, archive.CONFIG):
        if needed not in found:
            raise BackupError(f"not a supervisor backup: no {needed}")
    return found


def _read(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes:
    return _stream(tar, members[name]).read()


def _stream(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = tar.extractfile(member)
    if stream is None:
        raise BackupError(f"archive member {member.name} is not a file")
    return stream


def _when(manifest: dict[str, Any]) -> str:
    created = manifest.get("created")
    return (iso(float(created)) or "?") if isinstance(created, int | float) else "?"


def _restore_history(
    tar: tarfile.TarFile, member: tarfile.TarInfo, state_dir: Path, now: float
) -> str:
    private_dir(state_dir)
    target = state_dir / archive.HISTORY
    part = state_dir / f".{archive.HISTORY}.restore"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with _stream(tar, member) as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    try:
        with contextlib.closing(sqlite3.connect(f"{part.as_uri()}?mode=ro", uri=True)) as conn:
            (check,) = conn.execute("PRAGMA quick_check(1)").fetchone()
            if check != "ok":
                raise BackupError(f"the archived history fails SQLite's check: {check}")
            counts = _history_counts(conn)
    except (sqlite3.Error, BackupError) as exc:
        part.unlink(missing_ok=True)
        raise BackupError(f"the archived history is unusable: {exc}") from None
    aside = _move_aside(target, now, suffixes=("", "-wal", "-shm"))
    os.replace(part, target)
    return f"history: {archive.history_summary(*counts)} -> {target}{aside}"


def _restore_state(raw: bytes, state_dir: Path, now: float) -> str:
    try:
        state = json.loads(raw)
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise BackupError(f"the archived state is unusable: {exc}") from None
    # A backup taken while the daemon ran says "running": restored, that would read as a crash
    # of this installation at its next start (and alert). The restore is deliberate.
    state["running"] = False
    private_dir(state_dir)
    target = state_dir / STATE_FILE
    aside = _move_aside(target, now)
    write_atomic(target, json.dumps(state, separators=(",", ":")).encode())
    return f"state: {archive.state_summary(state)} -> {target}{aside}"


def _restore_config(raw: bytes, path: Path, manifest: dict[str, Any]) -> str:
    left_out = ", ".join(manifest.get("left_out") or []) or "nothing"
    if path.exists():
        beside = path.with_name(path.name + ".from-backup")
        write_atomic(beside, raw)
        return f"config: kept {path}; the archived one (secrets left out: {left_out}) is {beside}"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, raw)
    return f"config: written to {path}; put back its secrets (left out: {left_out})"


def _move_aside(path: Path, now: float, suffixes: tuple[str, ...] = ("",)) -> str:
    """Keep what a restore replaces (`<name>.before-restore-<time>`); returns the words."""
    moved = []
    for suffix in suffixes:
        src = Path(f"{path}{suffix}")
        if src.exists():
            dst = Path(f"{path}.before-restore-{int(now)}{suffix}")
            os.replace(src, dst)
            moved.append(dst.name)
    return f" (the one there moved aside to {moved[0]})" if moved else ""
