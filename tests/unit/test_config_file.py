"""The daemon's config file: the copy of the last valid one kept, and found again."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from supervisor.config.file import LAST_VALID, ConfigFile, last_valid, state_dirs
from supervisor.errors import ConfigError
from supervisor.runtime.state import write_private

TELEGRAM = '[alerts.telegram]\ntoken_file = "/nonexistent"\nchat_ids = [1]\n'


def good(state: Path, chat: int = 1) -> str:
    return (
        f'state_dir = "{state}"\n[[targets]]\nname = "trader"\nunit = "trader.service"\n'
        + TELEGRAM.replace("[1]", f"[{chat}]")
    )


def test_a_rejected_load_keeps_the_copy_of_the_last_good_one(tmp_path: Path) -> None:
    path, state = tmp_path / "config.toml", tmp_path / "state"
    path.write_text(good(state))
    source = ConfigFile(path, write_private)
    cfg = source.load()
    source.keep(cfg)
    copy = state / LAST_VALID
    assert copy.read_text() == good(state)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # it may name a token
    path.write_text(good(state, chat=2) + "bogus = 1\n")
    with pytest.raises(ConfigError):
        source.load()
    source.keep(cfg)  # what a daemon would do next: the copy stays the last valid bytes
    assert copy.read_text() == good(state)
    found, where = last_valid(path, {"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert where == copy
    assert found.alerts.telegram is not None
    assert found.alerts.telegram.chat_ids == [1]


def test_the_copy_is_found_even_when_the_config_no_longer_parses(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    default = xdg / "sidecar-supervisor"
    path = tmp_path / "config.toml"
    path.write_text(good(default))
    source = ConfigFile(path, write_private)
    source.keep(source.load())
    path.write_text("this is [ not toml")
    env = {"XDG_STATE_HOME": str(xdg)}
    assert state_dirs(path, env) == [default]
    assert last_valid(path, env)[1] == default / LAST_VALID


def test_state_dirs_follow_the_environment_then_the_file_then_the_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('state_dir = "~/elsewhere"\n[http]\nport = "broken"\n')
    env = {"SUPERVISOR_STATE_DIR": str(tmp_path / "env"), "XDG_STATE_HOME": str(tmp_path)}
    assert state_dirs(path, env) == [
        tmp_path / "env",
        Path("~/elsewhere").expanduser(),
        tmp_path / "sidecar-supervisor",
    ]


def test_without_a_copy_a_valid_current_config_is_used(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(good(tmp_path / "state"))
    cfg, where = last_valid(path, {"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert where == path
    assert cfg.targets[0].name == "trader"


def test_with_neither_it_says_where_it_looked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[http]\nport = 'x'\n")
    with pytest.raises(ConfigError) as err:
        last_valid(path, {"XDG_STATE_HOME": str(tmp_path)})
    problems = err.value.problems
    assert problems[0] == f"no copy kept at {tmp_path / 'sidecar-supervisor' / LAST_VALID}"
    assert any("http.port" in problem for problem in problems[1:])


def test_a_copy_that_cannot_be_written_is_a_warning_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = tmp_path / "config.toml"
    path.write_text(good(blocker / "state"))
    source = ConfigFile(path, write_private)
    source.keep(source.load())  # the state directory's parent is a file
    assert "cannot keep the config as" in caplog.text
