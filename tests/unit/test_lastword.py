"""The last word's words, from the unit's properties."""

from __future__ import annotations

from supervisor.alerts import lastword

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
