"""The alert policy with an injected clock: once, reminders, escalation, resolve, limits."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from supervisor.alerts.policy import SETTLE_S, AlertPolicy, Severity, format_html
from supervisor.config import AlertsConfig
from supervisor.model import ActiveState, ProbeView, Status, TargetHealth, UnitState
from supervisor.times import duration
from tests.clock import FakeClock


def target(
    clock: FakeClock,
    *,
    status: Status = Status.FAIL,
    failures: int = 1,
    since: float | None = None,
    name: str = "dashboard",
    critical: bool = False,
) -> TargetHealth:
    return TargetHealth(
        name=name,
        unit=f"{name}.service",
        critical=critical,
        status=status,
        output="http: timeout after 2.0 s",
        since=since or clock.time(),
        consecutive_failures=failures,
        last_success=None,
        unit_state=UnitState(
            unit=f"{name}.service", active_state=ActiveState.ACTIVE, sub_state="running"
        ),
        recovery="attempt 1/3",
        # Its http probe's failed runs are the failed rounds (systemd's updates are not).
        probes=(ProbeView("http", "http", status, "http: timeout after 2.0 s", failures),),
    )


def telegram_length(text: str) -> int:
    """Telegram counts UTF-16 code units (counted here apart from the code under test)."""
    return len(text.encode("utf-16-le")) // 2


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def policy(clock: FakeClock, **kw: Any) -> AlertPolicy:
    return AlertPolicy(AlertsConfig(**kw), clock, {"dashboard": 5.0})


def test_ten_failed_rounds_make_one_alert_then_a_reminder_then_one_resolved(
    clock: FakeClock,
) -> None:
    p = policy(clock, cooldown_s=900)
    since = clock.time()
    sent = []
    for rounds in range(1, 11):
        sent += p.observe(target(clock, failures=rounds, since=since), gave_up=False)
        clock.advance(5)
    assert [a.severity for a in sent] == [Severity.WARNING]
    assert sent[0].summary == "failing"
    assert sent[0].reason == "http: timeout after 2.0 s"
    clock.advance(900)
    reminder = p.observe(target(clock, failures=200, since=since), gave_up=False)
    assert [a.reminder for a in reminder] == [True]
    assert p.observe(target(clock, failures=201, since=since), gave_up=False) == []
    p.note_action("dashboard", "restarted")
    resolved = p.observe(target(clock, status=Status.PASS, failures=0), gave_up=False)
    assert [a.severity for a in resolved] == [Severity.RESOLVED]
    assert resolved[0].summary == "resolved after 15m 50s"
    assert resolved[0].actions == ("restarted",)
    assert p.observe(target(clock, status=Status.PASS, failures=0), gave_up=False) == []


def test_one_crash_is_one_round_however_many_updates_systemd_sends(clock: FakeClock) -> None:
    # A unit with no probe: systemd's several updates for one crash (failed, its result, its
    # exit status) raised its failure count to 3 at once, and one crash made an incident.
    p = policy(clock)  # failure_threshold 3, rounds of 5 s
    since = clock.time()
    crashed = replace(target(clock, failures=3, since=since), probes=())
    assert p.observe(crashed, gave_up=False) == []  # restarted at once: no incident
    clock.advance(10)  # still down after three rounds of time
    assert [a.summary for a in p.observe(crashed, gave_up=False)] == ["failing"]


def test_a_dead_unit_with_no_events_still_counts_rounds_by_time(clock: FakeClock) -> None:
    p = policy(clock)
    since = clock.time()
    assert p.observe(target(clock, failures=1, since=since), gave_up=False) == []
    clock.advance(10)  # three rounds of 5 s: 0-5, 5-10, 10-
    assert len(p.observe(target(clock, failures=1, since=since), gave_up=False)) == 1


def test_short_failure_below_threshold_never_alerts(clock: FakeClock) -> None:
    p = policy(clock)
    assert p.observe(target(clock, failures=2), gave_up=False) == []
    assert p.observe(target(clock, status=Status.PASS, failures=0), gave_up=False) == []


def test_give_up_opens_at_once_as_critical(clock: FakeClock) -> None:
    p = policy(clock)
    [alert] = p.observe(target(clock, failures=1), gave_up=True)
    assert alert.severity is Severity.CRITICAL


def test_escalates_when_recovery_gives_up_without_waiting_for_cooldown(clock: FakeClock) -> None:
    p = policy(clock)
    since = clock.time()
    [first] = p.observe(target(clock, failures=3, since=since), gave_up=False)
    clock.advance(20)
    [esc] = p.observe(target(clock, failures=4, since=since), gave_up=True)
    assert (first.severity, esc.severity, esc.summary) == (
        Severity.WARNING,
        Severity.CRITICAL,
        "failing, escalated",
    )
    assert p.observe(target(clock, failures=5, since=since), gave_up=True) == []


def test_critical_target_down_long_becomes_critical(clock: FakeClock) -> None:
    p = policy(clock, critical_after_s=300)
    since = clock.time()
    [warn] = p.observe(target(clock, failures=3, since=since, critical=True), gave_up=False)
    clock.advance(301)
    [crit] = p.observe(target(clock, failures=9, since=since, critical=True), gave_up=False)
    assert (warn.severity, crit.severity) == (Severity.WARNING, Severity.CRITICAL)


def test_silence_sends_nothing_until_it_ends(clock: FakeClock) -> None:
    p = policy(clock)
    p.silence("dashboard", 10)
    since = clock.time()
    assert p.observe(target(clock, failures=5, since=since), gave_up=True) == []
    clock.advance(599)
    assert p.observe(target(clock, failures=9, since=since), gave_up=True) == []
    clock.advance(2)
    [alert] = p.observe(target(clock, failures=9, since=since), gave_up=True)
    assert alert.severity is Severity.CRITICAL


def test_resolved_during_silence_says_nothing(clock: FakeClock) -> None:
    p = policy(clock)
    p.observe(target(clock, failures=3), gave_up=False)
    p.silence("dashboard", 5)
    assert p.observe(target(clock, status=Status.PASS, failures=0), gave_up=False) == []
    assert p.unsilence("dashboard")


def test_rate_limit_holds_then_sends_one_digest(clock: FakeClock) -> None:
    p = AlertPolicy(AlertsConfig(max_per_hour=2), clock, {})
    sent = []
    for i in range(5):
        sent += p.observe(target(clock, failures=3, name=f"t{i}"), gave_up=False)
    assert len(sent) == 2
    assert p.flush() == []
    clock.advance(3601)
    [digest] = p.flush()
    assert digest.summary == "3 alerts held back by the rate limit"
    assert digest.actions == ("t2: warning failing", "t3: warning failing", "t4: warning failing")
    assert p.flush() == []


def test_a_critical_alert_is_never_held_by_the_hourly_cap(clock: FakeClock) -> None:
    p = AlertPolicy(AlertsConfig(max_per_hour=1), clock, {})
    [first] = p.observe(target(clock, failures=3, name="dashboard"), gave_up=False)
    assert first.severity is Severity.WARNING
    assert p.observe(target(clock, failures=3, name="monitor"), gave_up=False) == []  # held
    [gave_up] = p.observe(target(clock, failures=3, name="trader"), gave_up=True)
    assert (gave_up.target, gave_up.severity) == ("trader", Severity.CRITICAL)
    # An escalation to critical goes out at once as well.
    [escalated] = p.observe(target(clock, failures=4, name="dashboard"), gave_up=True)
    assert (escalated.severity, escalated.summary) == (Severity.CRITICAL, "failing, escalated")
    clock.advance(3601)
    [digest] = p.flush()
    assert digest.actions == ("monitor: warning failing",)  # only the lower severity was held


def test_the_digest_fits_telegrams_limit_and_counts_the_rest(clock: FakeClock) -> None:
    p = AlertPolicy(AlertsConfig(max_per_hour=1), clock, {})
    names = [f"target-with-a-rather-long-name-{i:03d}" for i in range(201)]
    for name in names:
        p.observe(target(clock, failures=3, name=name), gave_up=False)
    clock.advance(3601)
    [digest] = p.flush()
    assert digest.summary == "200 alerts held back by the rate limit"
    text = format_html(digest, "host")
    assert telegram_length(text) <= 4096
    listed = [line for line in text.splitlines() if line.startswith("target-with")]
    assert len(listed) > 50  # as many as fit, one per line
    assert f"… and {200 - len(listed)} more" in text
    assert listed[0] == "target-with-a-rather-long-name-001: warning failing"


def test_a_long_reason_keeps_every_message_within_the_limit(clock: FakeClock) -> None:
    p = policy(clock)
    t = replace(target(clock, failures=3), output="<&>" * 5000)
    [alert] = p.observe(t, gave_up=False)
    text = format_html(replace(alert, actions=("restarted",) * 2000), "host")
    assert telegram_length(text) <= 4096
    assert "why: &lt;&amp;&gt;" in text
    assert text.endswith(" UTC</i>")


def test_breaker_incident(clock: FakeClock) -> None:
    p = policy(clock)
    [opened] = p.observe_breaker(True, "host CPU 95% > 90%")
    assert (opened.target, opened.reason) == ("supervisor", "host CPU 95% > 90%")
    assert p.observe_breaker(True, "host CPU 95% > 90%") == []
    clock.advance(65)
    [closed] = p.observe_breaker(False, "")
    assert closed.summary == "resolved after 1m 05s"


def test_export_restore_resumes_without_duplicates(clock: FakeClock) -> None:
    p = policy(clock)
    since = clock.time()
    assert len(p.observe(target(clock, failures=3, since=since), gave_up=False)) == 1
    p.silence("trader", 30)
    data = json.loads(json.dumps(p.export()))
    again = policy(clock)
    again.restore(data)
    clock.advance(60)
    assert again.observe(target(clock, failures=15, since=since), gave_up=False) == []
    assert again.silenced("trader")
    [resolved] = again.observe(target(clock, status=Status.PASS, failures=0), gave_up=False)
    assert resolved.severity is Severity.RESOLVED


def test_restore_skips_garbage(clock: FakeClock) -> None:
    p = policy(clock)
    p.restore({"incidents": [{"nonsense": 1}], "held": [{"bad": True}]})
    assert p.incidents == {}


def test_html_is_escaped_and_names_everything(clock: FakeClock) -> None:
    p = policy(clock)
    t = replace(target(clock, failures=3), output="<script>&")
    [alert] = p.observe(t, gave_up=False)
    text = format_html(alert, "box<1>")
    assert "&lt;script&gt;&amp;" in text
    assert "box&lt;1&gt;" in text
    assert "<b>WARNING</b> dashboard" in text
    assert "recovery: attempt 1/3" in text
    assert "UTC" in text


def test_duration_words() -> None:
    assert [duration(s) for s in (5, 65, 3725)] == ["5s", "1m 05s", "1h 02m"]


def test_a_warning_alerts_only_when_asked(clock: FakeClock) -> None:
    quiet = policy(clock)
    since = clock.time()
    for _ in range(5):
        assert quiet.observe(target(clock, status=Status.WARN, since=since), gave_up=False) == []
        clock.advance(5)
    assert quiet.incidents == {}


def test_on_warn_opens_a_lower_incident_then_resolves(clock: FakeClock) -> None:
    p = policy(clock, on_warn=True, cooldown_s=900)
    since = clock.time()
    sent = []
    for _ in range(4):
        warn = replace(target(clock, status=Status.WARN, since=since), output="balance: 80 < 100")
        sent += p.observe(warn, gave_up=False)
        clock.advance(5)
    [notice] = sent
    assert (notice.severity, notice.summary, notice.reason) == (
        Severity.NOTICE,
        "warn",
        "balance: 80 < 100",
    )
    assert "🟡 <b>NOTICE</b> dashboard on box: warn" in format_html(notice, "box")
    [resolved] = p.observe(target(clock, status=Status.PASS), gave_up=False)
    assert (resolved.severity, resolved.key) == (Severity.RESOLVED, "dashboard:warn")
    assert p.incidents == {}


def test_a_failure_supersedes_the_warning_and_a_warning_ends_the_failure(
    clock: FakeClock,
) -> None:
    p = policy(clock, on_warn=True, failure_threshold=1)
    assert p.observe(target(clock, status=Status.WARN), gave_up=False)[0].summary == "warn"
    [failing] = p.observe(target(clock, status=Status.FAIL), gave_up=False)
    assert (failing.severity, failing.summary) == (Severity.WARNING, "failing")
    assert set(p.incidents) == {"dashboard:health"}  # the warning closed without a message
    alerts = p.observe(target(clock, status=Status.WARN), gave_up=False)
    assert [(a.key, a.severity) for a in alerts] == [
        ("dashboard:health", Severity.RESOLVED),
        ("dashboard:warn", Severity.NOTICE),
    ]


def test_no_resolved_notice_before_the_probes_have_judged_the_new_process(
    clock: FakeClock,
) -> None:
    # A crash loop's restart (or the supervisor's own) shows the unit active before any
    # probe has run: the incident stays open until the probes say pass.
    p = policy(clock, failure_threshold=1)
    assert p.observe(target(clock), gave_up=False)
    unjudged = ProbeView("http", "http", Status.UNKNOWN, "not run yet", 0)
    active = replace(target(clock, status=Status.PASS, failures=0), probes=(unjudged,))
    assert p.observe(active, gave_up=False) == []
    judged = replace(active, probes=(replace(unjudged, status=Status.PASS, output="http 200"),))
    assert [a.severity for a in p.observe(judged, gave_up=False)] == [Severity.RESOLVED]


def test_a_unit_with_no_probe_is_back_only_once_it_stayed_up(clock: FakeClock) -> None:
    # A start that fails shows `active (running)` for a moment: with no probe to judge it,
    # "resolved" waits until the unit has stayed active for SETTLE_S.
    p = policy(clock, failure_threshold=1)
    assert p.observe(target(clock), gave_up=False)
    up = replace(target(clock, status=Status.PASS, failures=0), probes=())
    assert up.unit_state is not None
    entered = replace(up.unit_state, state_change_usec=int(clock.time() * 1e6))
    just_up = replace(up, unit_state=entered)
    assert p.observe(just_up, gave_up=False) == []
    clock.advance(SETTLE_S - 0.1)
    assert p.observe(just_up, gave_up=False) == []
    clock.advance(0.2)
    assert [a.severity for a in p.observe(just_up, gave_up=False)] == [Severity.RESOLVED]
