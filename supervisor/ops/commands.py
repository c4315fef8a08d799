"""The `doctor`, `backup` and `restore` subcommands: arguments in, words and an exit code out."""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

from supervisor import config
from supervisor.errors import EXIT_ALREADY_RUNNING, AlreadyRunningError, ConfigError
from supervisor.ops import findings

COMMANDS = ("doctor", "backup", "restore")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the subcommands on `supervisor`'s parser."""
    doctor = sub.add_parser("doctor", help="check the installation; say what to fix")
    doctor.add_argument("--config", type=Path)
    doctor.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    doctor.add_argument(
        "--send-test", action="store_true", help="also send a test message to every chat"
    )
    save = sub.add_parser("backup", help="write the history, state and config to one archive")
    save.add_argument("--config", type=Path)
    save.add_argument("file", type=Path, help="the archive to write (.tar.gz)")
    load = sub.add_parser("restore", help="put a backup back (the supervisor must be stopped)")
    load.add_argument("--config", type=Path)
    load.add_argument("file", type=Path, help="the archive `supervisor backup` wrote")


def main(args: argparse.Namespace) -> int:
    """Run one of COMMANDS."""
    # The commands' modules are imported when run, not when `supervisor run` builds its parser:
    # the daemon's RSS is not to carry the doctor's or the backup's imports.
    if args.command == "doctor":
        from supervisor.ops.doctor import examine

        found = examine(args.config, args.send_test)
        print(findings.render_json(found) if args.json else findings.render_text(found))
        return findings.exit_code(found)
    if args.command == "backup":
        return _backup(args.config, args.file)
    return _restore(args.config, args.file)


def _backup(path: Path | None, dest: Path) -> int:
    from supervisor.ops import backup
    from supervisor.ops.archive import SecretLeftError

    try:
        cfg, raw = config.load_source(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return 1
    try:
        said = backup.backup(cfg, raw, dest, time.time())
    except (backup.BackupError, SecretLeftError) as exc:
        print(f"backup failed, nothing written: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"backup failed, nothing written: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {dest}:")
    for line in said:
        print(f"  {line}")
    return 0


def _restore(path: Path | None, source: Path) -> int:
    from supervisor.ops import backup

    path = path or config.default_path()
    state_dir = _state_dir(path)
    try:
        said = backup.restore(state_dir, path, source, time.time())
    except AlreadyRunningError as exc:
        print(
            f"restore refused: {exc}; stop it first: systemctl --user stop sidecar-supervisor",
            file=sys.stderr,
        )
        return EXIT_ALREADY_RUNNING
    except (backup.BackupError, OSError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored {source} into {state_dir}:")
    for line in said:
        print(f"  {line}")
    return 0


def _state_dir(path: Path) -> Path:
    """The state directory the config names; without a valid config, what its file says or the
    default (a fresh machine restores before its secrets are back)."""
    try:
        return config.load(path).state_dir
    except ConfigError:
        pass
    try:
        raw = tomllib.loads(path.read_text()).get("state_dir")
    except (OSError, ValueError):
        raw = None
    return Path(raw).expanduser() if isinstance(raw, str) else config.default_state_dir()
