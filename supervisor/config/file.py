"""The daemon's config file: loaded, its last valid bytes kept, and found again later.

The daemon keeps a copy of its config in its state directory each time it loads one
(start-up, once it holds the state directory) or applies a reload. The last word (a oneshot
run when the supervisor's unit fails for good) reads that copy, so a broken config does not
also break the last word. Writing the copy is handed in (`write`): the state directory and
how a file is written whole belong to `runtime/`.

The daemon checks each config in a child process (`python -m supervisor.config.file PATH`),
which hands back the plain config (pickled): the schema's pydantic costs about 16 MB of RSS
that would otherwise stay in the daemon for good, for a check that runs at start and reload.
"""

from __future__ import annotations

import logging
import os
import pickle
import site
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import supervisor
from supervisor import config
from supervisor.config import Config
from supervisor.errors import ConfigError

log = logging.getLogger(__name__)
LAST_VALID = "last-valid-config.toml"
# Puts the bytes at the path whole, 0600, in a private directory; raises OSError.
Write = Callable[[Path, bytes], None]
CHECK_TIMEOUT_S = 60.0  # the child imports pydantic and checks: seconds on a loaded box


class ConfigFile:
    """The daemon's config file: `load` it, and `keep` what was loaded once it is in force."""

    def __init__(self, path: Path | None, write: Write) -> None:
        self.path = path
        self._write = write
        self._raw: bytes | None = None  # the bytes of the last config that validated

    def load(self) -> Config:
        """Read and check in a child process (ConfigError as `config.load`); remember the
        bytes if valid."""
        return self.begin()()

    def begin(self) -> Callable[[], Config]:
        """Start the check in its child; the function returned waits for it (as `load`), so
        the caller can do something else meanwhile."""
        finish = begin_apart(self.path)

        def checked() -> Config:
            cfg, self._raw = finish()
            return cfg

        return checked

    def keep(self, cfg: Config) -> None:
        """Keep the last loaded config as `<state_dir>/last-valid-config.toml` (0600: it may
        hold a token); a warning, never a crash, when it cannot."""
        if self._raw is None:
            return
        path = cfg.state_dir / LAST_VALID
        try:
            self._write(path, self._raw)
        except OSError as exc:
            log.warning(
                "cannot keep the config as %s: %s; the last word uses an older one", path, exc
            )
            return
        log.debug("kept the config as %s for the last word", path)


def state_dirs(config_path: Path, env: Mapping[str, str] = os.environ) -> list[Path]:
    """Where the copy may be: the state_dir the config names (if it still parses), the default.

    The config may be broken (that may be why the last word runs), so it is read leniently.
    """
    found = []
    if env.get("SUPERVISOR_STATE_DIR"):
        found.append(Path(env["SUPERVISOR_STATE_DIR"]).expanduser())
    try:
        named = tomllib.loads(config_path.read_text()).get("state_dir")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        named = None
    if isinstance(named, str):
        found.append(Path(named).expanduser())
    found.append(config.default_state_dir(env))
    return list(dict.fromkeys(found))


def last_valid(config_path: Path, env: Mapping[str, str] = os.environ) -> tuple[Config, Path]:
    """The config the daemon last kept, else the current file if it is valid; ConfigError."""
    problems = []
    for directory in state_dirs(config_path, env):
        copy = directory / LAST_VALID
        if not copy.is_file():
            problems.append(f"no copy kept at {copy}")
            continue
        try:
            return config.load(copy), copy
        except ConfigError as exc:
            problems.append(str(exc))
    try:
        return config.load(config_path), config_path
    except ConfigError as exc:
        problems.append(str(exc))
    raise ConfigError(str(config_path), problems)


def load_apart(path: Path | None) -> tuple[Config, bytes]:
    """`config.load_source` run in a short-lived child process, so that pydantic is loaded
    there and leaves with it; ConfigError for a bad config and when the check cannot run."""
    return begin_apart(path)()


def begin_apart(path: Path | None) -> Callable[[], tuple[Config, bytes]]:
    """Start `load_apart`'s child; the function returned waits for its answer."""
    where = str(path or config.default_path())
    argv = [sys.executable, "-m", "supervisor.config.file", where]
    pipe = subprocess.PIPE
    try:
        child = subprocess.Popen(argv, stdout=pipe, stderr=pipe, env=_child_env())
    except OSError as exc:
        raise ConfigError(
            where, [f"the config check (a child process) did not run: {exc}"]
        ) from None

    def answer() -> tuple[Config, bytes]:
        try:
            out, err = child.communicate(timeout=CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            child.kill()
            child.communicate()
            raise ConfigError(
                where, [f"the config check (a child process) did not finish: {exc}"]
            ) from None
        if child.returncode != 0 or not out:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            why = f"the config check (a child process) failed, exit {child.returncode}: {tail[0]}"
            raise ConfigError(where, [why])
        got = pickle.loads(out)  # our own child's answer, through a private pipe
        if got[0] == "error":
            raise ConfigError(got[1], got[2])
        return got[1], got[2]

    return answer


def _child_env() -> dict[str, str]:
    """Our environment (the SUPERVISOR_* overrides apply in the child too); when this copy of
    the package is not installed (a checkout on the path), its directory on PYTHONPATH, so
    the child checks with the same code. An installed copy is found as it is, and its
    site-packages is not put ahead of the standard library."""
    root = Path(supervisor.__file__).resolve().parents[1]
    installed = {Path(p).resolve() for p in site.getsitepackages()}
    if root in installed:
        return dict(os.environ)
    paths = [str(root), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _check(argv: list[str]) -> None:
    """The child's side: check the file at argv[1], write the answer to stdout (pickled)."""
    try:
        cfg, raw = config.load_source(Path(argv[1]))
        answer: tuple[object, ...] = ("ok", cfg, raw)
    except ConfigError as exc:
        answer = ("error", exc.path, exc.problems)
    sys.stdout.buffer.write(pickle.dumps(answer))


if __name__ == "__main__":
    _check(sys.argv)
