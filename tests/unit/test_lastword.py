"""The last word's words (from the unit's properties) and the last valid config it reads."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from supervisor.alerts import lastword
from supervisor.errors import ConfigError

UNIT = "sidecar-supervisor.service"
TARGETS = ["trader", "dashboard"]


def words(**props: str) -> str:
    return lastword.message(props, "box-1", UNIT, TARGETS)


def test_start_limit_after_crashes_names_host_reason_restarts_and_where_to_look() -> None:
    # What systemd 252 shows once the start limit stops a crash loop: the last run's Result.
    text = words(
        Result="exit-code",
        ExecMainCode="1",
        ExecMainStatus="1",
        NRestarts="9",
        StateChangeTimestamp="Tue 2025-01-07 10:00:00 UTC",
    )
    head, systemd, targets, look, again, when = text.splitlines()
    assert head == (
        "🔴 <b>CRITICAL</b> sidecar-supervisor on box-1 has stopped for good: it exited with "
        "status 1; systemd gave up restarting it after 9 restarts (start limit)"
    )
    assert systemd == "systemd: result exit-code, last exit status 1, 9 automatic restarts"
    assert targets == "not watched now: trader, dashboard"
    assert look == "look: <code>journalctl --user -u sidecar-supervisor</code>"
    assert "systemctl --user reset-failed sidecar-supervisor" in again
    assert when == "<i>failed at Tue 2025-01-07 10:00:00 UTC</i>"


def test_exit_78_says_the_config_is_invalid() -> None:
    props = {"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "78"}
    assert (
        lastword.reason(props) == "its config is invalid (exit 78), so systemd does not restart it"
    )
    assert lastword.last_exit(props) == "status 78 (bad config)"
    assert "last exit status 78 (bad config), 0 automatic restarts" in words(**props, NRestarts="0")


def test_a_start_limit_result_or_a_hand_run_adds_no_restart_words() -> None:
    hit = {"Result": "start-limit-hit", "NRestarts": "4"}
    assert lastword.reason(hit) == "systemd gave up restarting it (start limit hit)"
    by_hand = {"Result": "success", "NRestarts": "2"}
    assert lastword.reason(by_hand) == "systemd reports no failure (was this run by hand?)"


def test_watchdog_kills_until_the_limit() -> None:
    props = {"Result": "watchdog", "ExecMainCode": "2", "ExecMainStatus": "6", "NRestarts": "3"}
    assert lastword.reason(props) == (
        "it stopped answering systemd's watchdog and was killed; "
        "systemd gave up restarting it after 3 restarts (start limit)"
    )


def test_other_exit_statuses_and_signals() -> None:
    assert lastword.reason(
        {"Result": "exit-code", "ExecMainCode": "1", "ExecMainStatus": "75"}
    ) == ("it exited with status 75 (over its hard memory limit)")
    killed = {"Result": "watchdog", "ExecMainCode": "2", "ExecMainStatus": "6"}
    assert lastword.reason(killed) == "it stopped answering systemd's watchdog and was killed"
    assert lastword.last_exit(killed) == "killed by SIGABRT"
    assert (
        lastword.last_exit({"ExecMainCode": "3", "ExecMainStatus": "11"})
        == "dumped core on SIGSEGV"
    )
    assert (
        lastword.last_exit({"ExecMainCode": "2", "ExecMainStatus": "99"}) == "killed by signal 99"
    )


def test_when_systemd_could_not_be_asked_it_still_says_what_it_knows() -> None:
    text = lastword.message({}, "box-1", UNIT, [])
    assert "has stopped for good: it failed (systemd could not be asked)" in text
    assert "result unknown, last exit unknown, ? automatic restarts" in text
    assert "not watched" not in text  # no targets known: no empty line about them
    assert "journalctl --user -u sidecar-supervisor" in text


def test_a_long_fleet_is_cut_so_the_message_stays_whole() -> None:
    text = lastword.message({}, "box-1", UNIT, [f"target-{i:03d}" for i in range(500)])
    (line,) = [line for line in text.splitlines() if line.startswith("not watched now:")]
    assert line.startswith("not watched now: target-000, target-001, ")
    assert line.endswith(" more")
    assert len(line) < 1100
    assert text.endswith("systemctl --user start sidecar-supervisor</code>")


def test_everything_from_outside_is_escaped() -> None:
    text = lastword.message({"Result": "<b>odd</b>"}, "box<&>", UNIT, ["a&b"])
    assert "box&lt;&amp;&gt;" in text
    assert "&lt;b&gt;odd&lt;/b&gt;" in text
    assert "a&amp;b" in text


# -- the last valid config ------------------------------------------------------------------

TELEGRAM = '[alerts.telegram]\ntoken_file = "/nonexistent"\nchat_ids = [1]\n'


def good(state: Path, chat: int = 1) -> str:
    return (
        f'state_dir = "{state}"\n[[targets]]\nname = "trader"\nunit = "trader.service"\n'
        + TELEGRAM.replace("[1]", f"[{chat}]")
    )


def test_a_rejected_load_keeps_the_copy_of_the_last_good_one(tmp_path: Path) -> None:
    path, state = tmp_path / "config.toml", tmp_path / "state"
    path.write_text(good(state))
    source = lastword.ConfigFile(path)
    cfg = source.load()
    source.keep(cfg)
    copy = state / lastword.LAST_VALID
    assert copy.read_text() == good(state)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600  # it may name a token
    path.write_text(good(state, chat=2) + "bogus = 1\n")
    with pytest.raises(ConfigError):
        source.load()
    source.keep(cfg)  # what a daemon would do next: the copy stays the last valid bytes
    assert copy.read_text() == good(state)
    found, where = lastword.last_valid(path, {"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert where == copy
    assert found.alerts.telegram is not None
    assert found.alerts.telegram.chat_ids == [1]


def test_the_copy_is_found_even_when_the_config_no_longer_parses(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    default = xdg / "sidecar-supervisor"
    path = tmp_path / "config.toml"
    path.write_text(good(default))
    source = lastword.ConfigFile(path)
    source.keep(source.load())
    path.write_text("this is [ not toml")
    env = {"XDG_STATE_HOME": str(xdg)}
    assert lastword.state_dirs(path, env) == [default]
    assert lastword.last_valid(path, env)[1] == default / lastword.LAST_VALID


def test_state_dirs_follow_the_environment_then_the_file_then_the_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('state_dir = "~/elsewhere"\n[http]\nport = "broken"\n')
    env = {"SUPERVISOR_STATE_DIR": str(tmp_path / "env"), "XDG_STATE_HOME": str(tmp_path)}
    assert lastword.state_dirs(path, env) == [
        tmp_path / "env",
        Path("~/elsewhere").expanduser(),
        tmp_path / "sidecar-supervisor",
    ]


def test_without_a_copy_a_valid_current_config_is_used(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(good(tmp_path / "state"))
    cfg, where = lastword.last_valid(path, {"XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert where == path
    assert cfg.targets[0].name == "trader"


def test_with_neither_it_says_where_it_looked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[http]\nport = 'x'\n")
    with pytest.raises(ConfigError) as err:
        lastword.last_valid(path, {"XDG_STATE_HOME": str(tmp_path)})
    problems = err.value.problems
    assert problems[0] == f"no copy kept at {tmp_path / 'sidecar-supervisor' / lastword.LAST_VALID}"
    assert any("http.port" in problem for problem in problems[1:])


def test_a_copy_that_cannot_be_written_is_a_warning_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert not lastword.keep(blocker / "state", b"x = 1\n")  # its parent is a file
    assert "cannot keep the config as" in caplog.text
