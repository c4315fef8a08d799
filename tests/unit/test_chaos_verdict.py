"""The chaos run's checks, on records made by hand (pure parts of devtools.chaos)."""

from __future__ import annotations

from devtools.chaos.alerts import judge_alerts, read
from devtools.chaos.plan import Kind, Planned
from devtools.chaos.record import (
    ActionDelta,
    Fault,
    HealthSample,
    Incarnation,
    Life,
    LogEvent,
    Message,
    ProcSample,
    Record,
    UnitSample,
)
from devtools.chaos.report import table
from devtools.chaos.verdict import Check, judge
from supervisor.alerts.policy import Alert, Severity, format_html

T0 = 1_700_000_000.0
CHATS = (1, 2)


def text(severity: Severity, target: str, summary: str, at: float, reminder: bool = False) -> str:
    """What the supervisor itself sends (its own formatter)."""
    alert = Alert("k", target, severity, summary, at=at, opened_at=at, reminder=reminder)
    return format_html(alert, "box")


def both(at: float, body: str) -> list[Message]:
    return [Message(at, chat, body) for chat in CHATS]


def hang(n: int, target: str, start: float, repaired: float) -> Fault:
    return Fault(
        Planned(n, 0.0, Kind.HANG, target),
        start=start,
        lifted=start,
        detected=start + 5,
        repaired=repaired,
        ended=repaired + 0.1,
        victim=100 + n,
    )


def record(faults: list[Fault], messages: list[Message]) -> Record:
    rec = Record(seed=1, began=T0, started=T0, finished=T0 + 100, chats=CHATS)
    rec.faults, rec.messages = faults, messages
    rec.lives = [Life(1, 50, T0 - 5, ready=T0 - 4, watchdog=[T0 + i for i in range(0, 100, 5)])]
    return rec


def incident(target: str, opened: float, resolved: float) -> list[Message]:
    return both(opened + 0.2, text(Severity.WARNING, target, "failing", opened)) + both(
        resolved + 0.2, text(Severity.RESOLVED, target, "resolved after 9s", resolved)
    )


def test_an_alert_is_read_back_from_the_supervisors_own_format() -> None:
    alert = read(Message(T0, 1, text(Severity.CRITICAL, "trader", "failing, escalated", T0)))
    assert alert is not None
    assert (alert.severity, alert.target, alert.decided) == ("CRITICAL", "trader", T0)
    assert not alert.opens
    assert read(Message(T0, 1, "<pre>status table</pre>")) is None


def test_one_alert_and_one_resolved_per_incident_passes() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    found = judge_alerts(rec)
    assert len(found.incidents) == 2  # one per chat
    assert not (found.per_incident or found.lost or found.duplicated or found.false)


def test_a_lost_resolved_notice_and_a_duplicate_alert_are_found() -> None:
    faults = [hang(1, "trader", T0 + 10, T0 + 25)]
    failing = text(Severity.WARNING, "trader", "failing", T0 + 16)
    rec = record(faults, [*both(T0 + 16, failing), Message(T0 + 40, 1, failing)])
    found = judge_alerts(rec)
    assert any("never resolved" in p for p in found.per_incident)
    assert any("received 2 times" in p for p in found.duplicated)


def test_a_repeat_after_a_kill_from_a_state_file_that_still_held_it_is_shown_not_failed() -> None:
    first, other = CHATS
    resolved = text(Severity.RESOLVED, "trader", "resolved after 9s", T0 + 25)
    messages = [
        *both(T0 + 16.2, text(Severity.WARNING, "trader", "failing", T0 + 16)),
        Message(T0 + 25.2, first, resolved),  # Telegram has it; SIGKILL before the write
        *both(T0 + 27, resolved),  # life 2 sends what its file held: the first chat again
    ]
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], messages)
    rec.lives = [
        Life(1, 50, T0 - 5, ready=T0 - 4, exited=T0 + 25.3, killed="SIGKILL (fault 2)"),
        Life(2, 51, T0 + 26, ready=T0 + 26.5, inherited=[(first, resolved), (other, resolved)]),
    ]
    found = judge_alerts(rec)
    assert not (found.duplicated or found.lost or found.per_incident or found.false)
    head = resolved.splitlines()[0]
    again = f"chat {first}: {head} again from life 2, whose state file still held it"
    assert found.repeated == [again]
    # A file that said it went out (not inherited): the second copy is a duplicate.
    rec.lives[1].inherited = [(other, resolved)]
    found = judge_alerts(rec)
    assert found.duplicated == [f"chat {first}: received 2 times: {head}"]
    assert not found.lost  # the other chat got it once: nothing is missing anywhere


def test_a_resolved_notice_is_about_what_the_supervisor_had_seen() -> None:
    first = hang(1, "trader", T0 + 10, T0 + 40)
    second = hang(2, "trader", T0 + 42, T0 + 60)
    second.detected = T0 + 55  # not yet seen when the first incident's notice went out
    rec = record([first, second], incident("trader", T0 + 16, T0 + 50))
    rec.units = units("trader", (101, 0, 39.5), (102, 40, 59.5), (300, 60, 100))
    assert not judge_alerts(rec).false  # the first was repaired; the second not yet seen
    second.detected = T0 + 45  # seen failing, yet "resolved": the notice is false
    assert any("fault 2" in p for p in judge_alerts(rec).false)


def test_an_alert_without_a_fault_and_a_resolved_during_the_fault_are_false() -> None:
    faults = [hang(1, "dashboard", T0 + 10, T0 + 40)]
    messages = incident("dashboard", T0 + 15, T0 + 20) + incident("trader", T0 + 50, T0 + 60)
    rec = record(faults, messages)
    rec.units = units("dashboard", (101, 0, 39.5), (300, 40, 100))
    found = judge_alerts(rec)
    assert any("resolved at" in p and "not yet repaired" in p for p in found.false)
    assert any("trader" in p and "no fault" in p for p in found.false)


def units(target: str, *runs: tuple[int, float, float]) -> list[UnitSample]:
    """systemd's view of `target` as the run polls it, twice a second: each run is a main
    process (its PID), started at `since` and polled until `until` (seconds after T0)."""
    return [
        UnitSample(T0 + since + i / 2, target, pid, pid, T0 + since, 0, "active/running")
        for pid, since, until in runs
        for i in range(int((until - since) * 2) + 1)
    ]


def test_false_restarts_are_restarts_of_a_unit_with_no_fault() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    rec.incarnations = [
        Incarnation("trader", 7, T0 - 50),  # the fleet as it was before the run
        Incarnation("trader", 8, T0 + 22),  # the repair of fault 1
        Incarnation("dashboard", 9, T0 + 30),  # nothing was wrong with the dashboard
    ]
    rec.actions = [
        ActionDelta(T0 + 21, T0 + 22, "trader", "restart", "done", 1.0),
        ActionDelta(T0 + 70, T0 + 71, "position-monitor", "restart", "done", 1.0),
    ]
    check = next(c for c in judge(rec).checks if c.name == "false restarts: 0")
    assert not check.ok
    assert len(check.problems) == 2
    assert "dashboard" in check.problems[0] and "position-monitor" in check.problems[1]


def test_health_latency_counts_only_while_the_supervisor_is_up() -> None:
    rec = record([], [])
    rec.lives = [
        Life(1, 50, T0 - 5, ready=T0, exited=T0 + 10, killed="SIGKILL (fault 3)", watchdog=[T0]),
        Life(2, 51, T0 + 12, ready=T0 + 13, watchdog=[T0 + 13]),
    ]
    fast = [HealthSample(T0 + i, 0.003, 200, {}, {}, "", 1) for i in (1, 2, 14)]
    down = [HealthSample(T0 + 11, None, 0, {}, {}, "", 1)]
    rec.health = fast + down
    check = next(c for c in judge(rec).checks if c.name.startswith("/health within"))
    assert check.ok, check
    rec.health.append(HealthSample(T0 + 15, 0.250, 200, {}, {}, "", 2))
    rec.host_cpu = [(T0 + 14.5, 40.0), (T0 + 15.5, 60.0), (T0 + 16.5, 40.0)]
    check = next(c for c in judge(rec).checks if c.name.startswith("/health within"))
    assert not check.ok and "250 ms" in check.problems[0]
    # Late while every core was busy: a nice-10 process waits its turn; counted apart.
    rec.host_cpu[1] = (T0 + 15.5, 100.0)
    check = next(c for c in judge(rec).checks if c.name.startswith("/health within"))
    assert check.ok and "1 late while the host CPU was at 95%+" in check.detail


def test_health_answered_fails_on_a_request_lost_while_up_whatever_the_latency() -> None:
    rec = record([], [])
    rec.lives = [Life(1, 50, T0 - 5, ready=T0, watchdog=[T0])]
    rec.health = [HealthSample(T0 + i, 0.900, 200, {}, {}, "", 1) for i in (1, 2)]
    check = next(c for c in judge(rec).checks if c.name == "/health answered while up")
    assert check.ok and check.detail == "2/2 answered"  # slow is the timing check's business
    rec.health.append(HealthSample(T0 + 3, None, 0, {}, {}, "", 1))
    rec.health.append(HealthSample(T0 + 4, 0.002, 429, {}, {}, "", 1))  # no burst: not a doc
    check = next(c for c in judge(rec).checks if c.name == "/health answered while up")
    assert not check.ok and check.detail == "2/4 answered"
    assert "no answer" in check.problems[0] and "HTTP 429" in check.problems[1]


def test_footprint_drift_is_measured_within_one_life_once_it_is_warm() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    mib = 2**20

    def quiet(start: int, rss_mib: int, fds: int) -> list[ProcSample]:
        return [
            ProcSample(T0 + i, 1, rss_mib * mib, fds, 1.0, True) for i in range(start, start + 6)
        ]

    # Growth in the first minutes of a life is its warm-up, not drift: the life is judged
    # from LIFE_WARM_UP_S after READY=1 (the run's figure, from the first repair, is shown).
    rec.proc = quiet(30, 40, 20) + quiet(200, 43, 20) + quiet(290, 43, 20)
    v = judge(rec)
    check = next(c for c in v.checks if c.name.startswith("footprint"))
    assert check.ok, check
    assert "life 1 over 95 s: RSS +0.00 MiB" in check.detail
    assert "the run over 265 s: RSS +3.00 MiB, descriptors +0 (shown)" in check.detail
    # Growth after it is drift.
    rec.proc = quiet(30, 40, 20) + quiet(200, 40, 20) + quiet(290, 43, 21)
    v = judge(rec)
    check = next(c for c in v.checks if c.name.startswith("footprint"))
    assert not check.ok
    assert check.problems[0].startswith("life 1: RSS +3.00 MiB, descriptors +1")
    report = table(rec, v, "short")
    assert "FAIL footprint drift" in report and "verdict: FAIL" in report


def test_a_clean_record_passes_every_check() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    rec.incarnations = [Incarnation("trader", 8, T0 + 22)]
    rec.health = [HealthSample(T0 + i / 10, 0.004, 200, {}, {}, "", 1) for i in range(1000)]
    mib = 2**20
    rec.proc = [ProcSample(T0 + i, 1, 40 * mib, 20, 1.0, True) for i in range(30, 96)]
    v = judge(rec)
    assert v.ok, [c for c in v.checks if not c.ok]


def give_up(at: float, target: str, attempts: int) -> LogEvent:
    line = (
        f"2026-01-01 00:00:00,000 ERROR supervisor.recovery.executor: giving up on {target} "
        f"({target}.service): {attempts} attempts in 30 s did not help; next try gave up until x"
    )
    return LogEvent(at, "give-up", line)


def test_giving_up_without_trying_is_found() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 40)], [])
    check = next(c for c in judge(rec).checks if c.name == "recovery tried before giving up")
    assert check.ok
    rec.log = [give_up(T0 + 15, "trader", 4), give_up(T0 + 36, "trader", 1)]
    check = next(c for c in judge(rec).checks if c.name == "recovery tried before giving up")
    assert check.ok, check  # all attempts used, then its slow retry failed: both as designed
    rec.log = [give_up(T0 + 15, "trader", 1)]
    check = next(c for c in judge(rec).checks if c.name == "recovery tried before giving up")
    assert not check.ok
    assert "gave up after 1 attempt(s)" in check.problems[0]


def test_a_footprint_never_measured_fails_only_a_long_run() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    for short, ok in ((True, True), (False, False)):
        rec.short = short
        check = next(c for c in judge(rec).checks if c.name.startswith("footprint"))
        assert check.ok is ok and "not measured" in check.detail


def test_a_state_file_that_lags_the_outbox_is_found() -> None:
    rec = record([], [])

    def sample(i: int, waiting: int, in_file: int) -> ProcSample:
        return ProcSample(T0 + i, 1, 2**25, 12, 1.0, False, "", waiting, in_file)

    rec.proc = [sample(i, 2 if i < 5 else 0, 2 if i < 5 else 0) for i in range(30)]
    check = next(c for c in judge(rec).checks if c.name.startswith("state file"))
    assert check.ok  # written as soon as the outbox changed
    rec.proc = [sample(i, 2 if i < 5 else 0, 2) for i in range(30)]  # delivered, never written
    check = next(c for c in judge(rec).checks if c.name.startswith("state file"))
    assert not check.ok and "the file lists 2 waiting, /metrics says 0" in check.problems[0]


def skipped(n: int, kind: Kind, why: str = "trader was not free within 30 s") -> Fault:
    return Fault(Planned(n, 0.0, kind, "trader"), skipped=why)


def test_every_planned_kind_must_be_injected_and_skips_are_capped() -> None:
    def check(faults: list[Fault]) -> Check:
        found = judge(record(faults, []))
        return next(c for c in found.checks if c.name == "every kind injected, skips <= 5 %")

    hangs = [hang(n, "trader", T0 + n, T0 + n + 0.5) for n in range(1, 21)]
    ok = check([*hangs, skipped(21, Kind.HANG)])  # 1 of 21 skipped: within 5 %
    assert ok.ok, ok
    many = check([*hangs, skipped(21, Kind.HANG), skipped(22, Kind.HANG)])
    assert not many.ok
    assert "2 of 22 faults skipped (at most 1: 5 %)" in many.problems
    kind = check([*hangs, skipped(21, Kind.STALL)])
    assert not kind.ok
    assert kind.problems[0] == "stall: planned, never injected"
    assert kind.problems[1].startswith("fault 21 stall trader skipped: trader was not free")


def test_an_alert_belongs_to_a_fault_only_within_its_stamps_second() -> None:
    # The hang ended at T0 + 25.1 (fault.ended); the alert's stamp says T0 + 27 and it was
    # received at once: it was decided after the fault, so no fault was under way. The old
    # 2 s allowance let it belong to the hang.
    late = incident("trader", T0 + 27, T0 + 30)
    found = judge_alerts(record([hang(1, "trader", T0 + 10, T0 + 25)], late))
    assert any("trader" in p and "no fault" in p for p in found.false)
    # Stamped in the fault's last second (T0 + 25 cut from T0 + 25.05): it belongs to it.
    inside = incident("trader", T0 + 25, T0 + 30)
    found = judge_alerts(record([hang(1, "trader", T0 + 10, T0 + 25)], inside))
    assert not [p for p in found.false if "no fault" in p]


def test_a_429_is_an_answer_only_during_an_http_burst() -> None:
    burst = Fault(
        Planned(1, 0.0, Kind.LOAD, None, 5.0), start=T0 + 20, lifted=T0 + 25, ended=T0 + 25
    )
    rec = record([burst], [])
    rec.health = [HealthSample(T0 + 22, 0.003, 429, {}, {}, "", 1)]
    check = next(c for c in judge(rec).checks if c.name.startswith("/health"))
    assert check.ok, check
    rec.health = [HealthSample(T0 + 40, 0.003, 429, {}, {}, "", 1)]  # no burst: refused
    check = next(c for c in judge(rec).checks if c.name.startswith("/health"))
    assert not check.ok and "HTTP 429" in check.problems[0]


def test_own_cpu_pauses_fail_while_faults_are_handled_and_are_shown_after() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    note = "breaker open: own CPU 3.3% > budget 1%; probes paused"
    rec.health = [HealthSample(T0 + 24, 0.002, 200, {}, {}, note, 1)]  # mid-incident
    check = next(c for c in judge(rec).checks if c.name == "probes never paused by our own CPU")
    assert not check.ok and "1 samples paused" in check.detail
    rec.health = [HealthSample(T0 + 25.1 + 29, 0.002, 200, {}, {}, note, 1)]  # 29 s after
    check = next(c for c in judge(rec).checks if c.name == "probes never paused by our own CPU")
    assert not check.ok
    rec.health = [HealthSample(T0 + 25.1 + 31, 0.002, 200, {}, {}, note, 1)]  # the quiet after
    check = next(c for c in judge(rec).checks if c.name == "probes never paused by our own CPU")
    assert check.ok and "1 paused in the quiet after the faults (shown)" in check.detail


def test_flapping_is_an_incident_of_its_own_beside_the_failure() -> None:
    """A give-up while flapping is told, and so is flapping: two incidents, not a duplicate."""
    crash = Fault(
        Planned(1, 0.0, Kind.CRASH_LOOP, "dashboard"),
        start=T0 + 10, lifted=T0 + 30, detected=T0 + 10, repaired=T0 + 35, ended=T0 + 35,
    )  # fmt: skip
    flapping = text(Severity.WARNING, "dashboard", "flapping", T0 + 15)
    stable = text(Severity.RESOLVED, "dashboard", "stable again after 1m 00s of flapping", T0 + 75)
    messages = [
        *both(T0 + 15.1, flapping),
        *both(T0 + 15.2, text(Severity.CRITICAL, "dashboard", "failing", T0 + 15)),
        *both(T0 + 35.1, text(Severity.RESOLVED, "dashboard", "resolved after 20s", T0 + 35)),
    ]
    found = judge_alerts(record([crash], messages))
    assert not found.duplicated
    assert [p for p in found.per_incident if "flapping incident" in p and "never" in p]
    found = judge_alerts(record([crash], [*messages, *both(T0 + 75.1, stable)]))
    assert not (found.per_incident or found.lost or found.duplicated or found.false)
    assert len(found.incidents) == 4  # two per chat


def test_every_life_of_ten_minutes_is_judged_not_only_the_longest() -> None:
    rec = record([hang(1, "trader", T0 + 10, T0 + 25)], incident("trader", T0 + 16, T0 + 25))
    mib = 2**20
    rec.lives = [
        Life(1, 50, T0 - 5, ready=T0, exited=T0 + 1000, killed="SIGKILL (fault 9)"),
        Life(2, 51, T0 + 1001, ready=T0 + 1002),
    ]
    rec.faults.append(hang(2, "trader", T0 + 1010, T0 + 1020))

    def quiet(life: int, start: int, rss_mib: int) -> list[ProcSample]:
        return [
            ProcSample(T0 + i, life, rss_mib * mib, 20, 1.0, True) for i in range(start, start + 6)
        ]

    # Life 1 (about 13 minutes measured) grows by 3 MiB; life 2 lives longer and stays flat.
    rec.proc = quiet(1, 200, 40) + quiet(1, 990, 43) + quiet(2, 1200, 40) + quiet(2, 2900, 40)
    check = next(c for c in judge(rec).checks if c.name.startswith("footprint"))

    assert not check.ok
    assert check.problems[0].startswith("life 1: RSS +3.00 MiB")
    assert "life 2 over 1705 s: RSS +0.00 MiB" in check.detail
