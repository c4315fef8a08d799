"""The daemon's config file: loaded, its last valid bytes kept, and found again later.

The daemon keeps a copy of its config in its state directory each time it loads one
(start-up, once it holds the state directory) or applies a reload. The last word (a oneshot
run when the supervisor's unit fails for good) reads that copy, so a broken config does not
also break the last word. Writing the copy is handed in (`write`): the state directory and
how a file is written whole belong to `runtime/`.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from supervisor import config
from supervisor.config import Config
from supervisor.errors import ConfigError

log = logging.getLogger(__name__)
LAST_VALID = "last-valid-config.toml"
# Puts the bytes at the path whole, 0600, in a private directory; raises OSError.
Write = Callable[[Path, bytes], None]


class ConfigFile:
    """The daemon's config file: `load` it, and `keep` what was loaded once it is in force."""

    def __init__(self, path: Path | None, write: Write) -> None:
        self.path = path
        self._write = write
        self._raw: bytes | None = None  # the bytes of the last config that validated

    def load(self) -> Config:
        """Read and validate (ConfigError as `config.load`); remember the bytes if valid."""
        cfg, self._raw = config.load_source(self.path)
        return cfg

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
