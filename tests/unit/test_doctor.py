"""The doctor's verdicts: each fact judged ok, warn or fail, with its fix; the exit code."""

from __future__ import annotations

import json

from supervisor.ops import judge, reading
from supervisor.ops.findings import Finding, Level, exit_code, render_json, render_text, verdict

NOW = 1_800_000_000.0


def test_warnings_alone_exit_0_and_a_failure_exits_1() -> None:
    ok, warn = Finding.ok("a", "fine"), Finding.warn("b", "look", "do x")
    assert exit_code([ok, warn]) == 0
    assert verdict([ok, warn]) is Level.WARN
    assert exit_code([ok, warn, Finding.fail("c", "broken", "do y")]) == 1
    assert exit_code([]) == 0


def test_text_is_one_line_per_check_with_its_fix_and_json_says_the_same() -> None:
    found = [Finding.ok("config", "valid"), Finding.fail("port", "held by pid 7", "stop it")]
    lines = render_text(found).splitlines()
    assert lines[0].split() == ["ok", "config", "valid"]
    assert lines[1] == "fail  port    held by pid 7; fix: stop it"
    assert lines[-1] == "doctor: fail (1 ok, 1 fail)"
    doc = json.loads(render_json(found))
    assert doc["status"] == "fail"
    assert doc["checks"][1] == {
        "name": "port",
        "level": "fail",
        "detail": "held by pid 7",
        "fix": "stop it",
    }


def test_a_unit_that_does_not_exist_fails_with_how_to_install_it() -> None:
    found = judge.target_unit(judge.UnitFacts("trader", "trader.service", "not-found"))
    assert found.level is Level.FAIL
    assert found.name == "unit trader"
    assert "daemon-reload" in found.fix
    loaded = judge.target_unit(judge.UnitFacts("trader", "trader.service", "loaded", "active"))
    assert loaded.level is Level.OK


def test_the_port_is_ok_when_free_or_ours_and_fails_when_someone_else_holds_it() -> None:
    assert judge.port("127.0.0.1:5051", True, [], None).level is Level.OK
    assert judge.port("127.0.0.1:5051", False, [(40, "pid 40")], 40).level is Level.OK
    other = judge.port("127.0.0.1:5051", False, [(41, "pid 41 ('nc -l')")], 40)
    assert other.level is Level.FAIL
    assert "pid 41" in other.detail
    assert "http.port" in other.fix
    unseen = judge.port("127.0.0.1:5051", False, [], None)
    assert "cannot see" in unseen.detail


def test_the_daemon_not_running_or_not_answering_fails() -> None:
    assert judge.daemon(None, None, None).level is Level.FAIL
    assert "systemctl --user start" in judge.daemon(None, None, None).fix
    assert judge.daemon(7, None, "refused").level is Level.FAIL
    assert judge.daemon(7, "pass", None).level is Level.OK


def facts(**kw: object) -> judge.DirFacts:
    base: dict[str, object] = {
        "path": "/s",
        "owner": 1000,
        "uid": 1000,
        "write_error": None,
        "free_bytes": 10_000 * judge.MB,
        "need_bytes": 116 * judge.MB,
    }
    return judge.DirFacts(**{**base, **kw})  # type: ignore[arg-type]


def test_the_state_dir_must_be_ours_writable_and_roomy() -> None:
    assert judge.state_dir(facts()).level is Level.OK
    assert judge.state_dir(facts(owner=0)).level is Level.FAIL
    unwritable = judge.state_dir(facts(write_error="Read-only file system"))
    assert unwritable.level is Level.FAIL
    assert "Read-only file system" in unwritable.detail
    assert "state_dir" in unwritable.fix
    assert judge.state_dir(facts(free_bytes=50 * judge.MB)).level is Level.WARN
    assert judge.state_dir(facts(free_bytes=judge.MB)).level is Level.FAIL
    assert "will be created" in judge.state_dir(facts(owner=None)).detail


def test_linger_trusts_logind_and_falls_back_to_its_file() -> None:
    assert judge.linger("me", "yes", False).level is Level.OK
    assert judge.linger("me", "no", True).level is Level.WARN
    assert judge.linger("me", None, True).level is Level.OK
    off = judge.linger("me", None, False)
    assert off.level is Level.WARN
    assert off.fix == "sudo loginctl enable-linger me"


def test_telegram_a_refused_token_a_lost_api_and_an_unreachable_chat() -> None:
    refused = judge.telegram(
        judge.TelegramFacts(True, token_error="getMe: the bot token was rejected")
    )
    assert [f.level for f in refused] == [Level.FAIL]
    assert "token_file" in refused[0].fix
    lost = judge.telegram(judge.TelegramFacts(True, token_error="getMe: timed out", refused=False))
    assert "does not answer" in lost[0].detail
    chats = ((1, None, "Ops"), (2, "getChat: Bad Request: chat not found", ""))
    found = judge.telegram(judge.TelegramFacts(True, "bot", chats=chats, sent=(1,)))
    assert [(f.name, f.level) for f in found] == [
        ("telegram", Level.OK),
        ("chat 1", Level.OK),
        ("chat 2", Level.FAIL),
    ]
    assert "test message sent" in found[1].detail
    assert judge.telegram(judge.TelegramFacts(False))[0].level is Level.WARN


def test_the_installed_unit_matches_the_template_with_its_paths_filled_in() -> None:
    template = "[Service]\nExecStart=@VENV@/bin/supervisor run --config @CONFIG@\nNice=10\n"
    same = "[Service]\nExecStart=/v/bin/supervisor run --config /c.toml\nNice=10\n"
    assert reading.unit_differences(template, same) == []
    edited = same.replace("Nice=10", "Nice=0")
    diffs = reading.unit_differences(template, edited)
    assert diffs == ["line 3: shipped 'Nice=10', installed 'Nice=0'"]
    assert judge.unit_file("/u", template, diffs).level is Level.WARN
    assert judge.unit_file("/u", template, []).level is Level.OK
    assert judge.unit_file(None, template, []).level is Level.WARN


def test_no_journald_is_a_warning_that_says_so() -> None:
    found = judge.journal(False, None, None)
    assert found.level is Level.WARN
    assert "no journald" in found.detail
    assert judge.journal(True, "", None).level is Level.WARN
    assert judge.journal(True, "started", None).level is Level.OK


def test_budget_from_the_supervisors_own_figures() -> None:
    about = {
        "cpuPercent": 0.2,
        "rssBytes": 60 * judge.MB,
        "budget": {"cpuPercent": 1.0, "memoryMb": 100},
    }
    assert judge.budget(about, None).level is Level.OK
    over = judge.budget({**about, "rssBytes": 150 * judge.MB}, None)
    assert over.level is Level.WARN
    assert "150 MB of 100 MB" in over.detail
    assert judge.budget(None, "refused").level is Level.WARN


def test_the_breaker_says_why_it_last_opened_and_how_often() -> None:
    events = [
        judge.BreakerEvent(NOW - 60, False, "breaker closed"),
        judge.BreakerEvent(NOW - 120, True, "breaker open: host CPU 97% > 90%; probes paused"),
        judge.BreakerEvent(NOW - 3 * 86_400, True, "breaker open: host memory 90% > 85%"),
    ]
    found = judge.breaker(events, NOW)
    assert found.level is Level.OK
    assert "opened 1x in 24 h, 2x in 7 d" in found.detail
    assert "host CPU 97%" in found.detail
    often = [judge.BreakerEvent(NOW - i * 600, True, "breaker open: x") for i in range(3)]
    assert judge.breaker(often, NOW).level is Level.WARN
    assert "never opened" in judge.breaker([], NOW).detail


def test_the_lock_holder_is_read_from_proc_locks() -> None:
    locks = (
        "1: POSIX  ADVISORY  WRITE 99 fd:01:123 0 EOF\n"
        "2: FLOCK  ADVISORY  WRITE 4242 fd:01:777 0 EOF\n"
        "2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:777 0 EOF\n"
    )
    assert reading.lock_holder(locks, 0xFD, 1, 777) == 4242
    assert reading.lock_holder(locks, 0xFD, 1, 123) is None
    assert reading.lock_holder(locks, 0xFD, 1, 5) is None
    # overlayfs: another device number, the same inode, the PID the holder wrote
    assert reading.lock_holder(locks, 0x2A, 0, 777, written=4242) == 4242
    assert reading.lock_holder(locks, 0x2A, 0, 777, written=1) is None
