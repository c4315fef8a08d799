"""One dispatcher, and what each destination makes of a typed event."""

from __future__ import annotations

import logging

import pytest

from supervisor.api.metrics import Metrics
from supervisor.app.dispatch import Dispatcher
from supervisor.app.subscribers import action_note, history_record, to_journal, to_metrics
from supervisor.happenings import (
    AlertDelivery,
    AlertQueued,
    BreakerChanged,
    BusConnected,
    ChatCommand,
    CureRan,
    Happening,
    HoldEnded,
    HoldSet,
    JobResult,
    ManualRestart,
    Outcome,
    PortFreed,
    RecoveryFinished,
    RecoveryStarted,
    Repair,
    Step,
    UnitDied,
    job_result,
)
from supervisor.history.events import Kind

RESTART = Repair((Step.RESTART,))


def test_every_subscriber_hears_in_order_and_a_broken_one_stops_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[str] = []
    events = Dispatcher()
    events.subscribe(lambda e: heard.append(f"first {type(e).__name__}"))

    def broken(_event: Happening) -> None:
        raise RuntimeError("a destination broke")

    events.subscribe(broken)
    events.subscribe(lambda e: heard.append(f"last {type(e).__name__}"))
    events.emit(BreakerChanged(True, 1, "breaker open: cpu", "cpu"))
    assert heard == ["first BreakerChanged", "last BreakerChanged"]
    assert "a subscriber failed on BreakerChanged" in caplog.text


def test_a_repair_names_its_steps_in_the_order_they_ran() -> None:
    repair = Repair((Step.RESTART,)).then(Step.RUN).then(Step.FREE_PORT)
    assert repair.label == "free-port+run+restart"
    assert [Outcome.of(j).value for j in JobResult] == [j.value for j in JobResult]


def test_history_keeps_the_words_and_details_it_always_kept() -> None:
    started = RecoveryStarted("trader", RESTART, 1, 3, "unit failed")
    assert history_record(started) == (
        Kind.RECOVERY,
        "restart trader (attempt 1/3): unit failed",
        "trader",
        {"action": "restart", "attempt": 1, "maxAttempts": 3},
    )
    assert history_record(RecoveryStarted("trader", RESTART, 1, 3, "x", dry_run=True)) is None
    cure = RecoveryFinished("disk", Repair((Step.RUN,)), Outcome.FAILED, 1, 3, exit_code=3)
    assert history_record(cure) == (
        Kind.RECOVERY,
        "run disk (attempt 1/3): failed (exit 3)",
        "disk",
        {"action": "run", "result": "failed (exit 3)", "attempt": 1},
    )
    manual = ManualRestart("trader", "trader.service", Outcome.FAILED, error="bus gone")
    assert history_record(manual) == (
        Kind.RECOVERY,
        "restart trader on request: failed: bus gone",
        "trader",
        {"action": "manual", "result": "failed: bus gone"},
    )


def test_the_alert_policy_hears_only_what_recovery_got_done() -> None:
    freed = Repair((Step.RESTART,)).then(Step.FREE_PORT)
    assert action_note(RecoveryFinished("web", freed, Outcome.DONE, 1, 3)) == (
        "web",
        "port freed and restarted",
    )
    assert action_note(RecoveryFinished("web", RESTART, Outcome.TIMEOUT, 1, 3)) is None
    # A cure that ran is told, with its result; one that could not start is not.
    ran = CureRan("disk", "/usr/local/bin/clean-cache", Outcome.FAILED, 2, "no space")
    assert action_note(ran) == ("disk", "ran clean-cache: failed (exit 2)")
    assert action_note(CureRan("disk", "/x", Outcome.CANNOT_RUN, None, "No such file")) is None
    # The cure alone is not a restart, even when it succeeds.
    assert action_note(RecoveryFinished("disk", Repair((Step.RUN,)), Outcome.DONE, 1, 3)) is None


def test_the_journal_names_the_target_and_the_action(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "supervisor")
    freed = PortFreed("web", 5050, "pid 7 ('python', user me)", 7, "python", "me", "ended")
    for event in (
        freed,
        RecoveryFinished("web", RESTART, Outcome.DONE, 1, 3),
        RecoveryFinished("web", RESTART, Outcome.BUS_ERROR, 2, 3, error="no reply"),
    ):
        to_journal(event)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "freed port 5050 for web: pid 7 ('python', user me): ended"),
        ("INFO", "restart web: job done"),
        ("ERROR", "restart web failed: no reply"),
    ]


def test_holds_and_deaths_keep_their_rows_and_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "supervisor")
    words = "trader held until 10:00:05 by cli:ann: deploying"
    held = HoldSet("trader", 1_799_913_605.0, "cli:ann", "deploying", words)
    released = HoldEnded("trader", "chat:7")
    expired = HoldEnded("trader", "time", expired=True)
    died = UnitDied("trader", "trader.service", "exited with status 3", {"unit": "trader.service"})
    assert [history_record(e) for e in (held, released, expired, died)] == [
        (Kind.HOLD, words, "trader", {"action": "set", "until": 1_799_913_605.0, "by": "cli:ann"}),
        (Kind.HOLD, "hold on trader released by chat:7", "trader", {"action": "released"}
         | {"by": "chat:7"}),
        (Kind.HOLD, "hold on trader expired", "trader", {"action": "expired", "by": "time"}),
        (Kind.UNIT, "trader died: exited with status 3", "trader", {"unit": "trader.service"}),
    ]  # fmt: skip
    for event in (held, released, expired, died):
        to_journal(event)
    # The loggers of the modules that logged these before they were events (journal filters).
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("supervisor.app.holding", "WARNING", words),
        ("supervisor.app.holding", "WARNING", "hold on trader released by chat:7"),
        ("supervisor.app.holding", "WARNING", "hold on trader expired"),
        ("supervisor.watch.autopsy", "WARNING", f"trader (trader.service) died: {died.words}"),
    ]


def test_alert_delivery_and_chat_commands_read_as_before() -> None:
    queued = AlertQueued("trader", "critical", "failing", True, "unit failed", "attempt 1/3")
    assert history_record(queued) == (
        Kind.ALERT,
        "alert critical (reminder): trader failing",
        "trader",
        {"severity": "critical", "reminder": True, "reason": "unit failed"}
        | {"recovery": "attempt 1/3"},
    )
    failed = AlertDelivery(42, "failed", 2, "timed out")
    assert history_record(failed) == (
        Kind.ALERT,
        "alert delivery to chat 42 failed (attempt 2): timed out",
        None,
        {"result": "failed"},
    )
    command = ChatCommand("restart", ("trader",), 7, "ann", 42)
    assert history_record(command) == (
        Kind.CHAT,
        "/restart trader from user 7 (ann) in chat 42",
        None,
        {"command": "restart", "chat": 42, "sender": "ann"},
    )


def test_the_breaker_and_the_bus_are_kept_too() -> None:
    opened = BreakerChanged(True, 2, "breaker open: host cpu 95 %", "cpu")
    assert history_record(opened) == (
        Kind.BREAKER,
        "breaker open: host cpu 95 %",
        None,
        {"open": True},
    )
    closed = history_record(BreakerChanged(False, 2, "breaker closed", ""))
    assert closed is not None and closed[1].startswith("breaker closed: host load back under")
    assert history_record(BusConnected()) == (Kind.BUS, "connected to the user bus", None, {})


def test_a_job_result_systemd_has_not_documented_is_invalid_not_a_crash() -> None:
    assert [job_result(w) for w in ("done", "timeout", "frobbed")] == [
        JobResult.DONE,
        JobResult.TIMEOUT,
        JobResult.INVALID,
    ]
    assert Outcome.of(job_result("frobbed")) is Outcome.INVALID


def test_a_failing_cure_counts_as_failed_whatever_its_exit_code(metrics: Metrics) -> None:
    hear = to_metrics(metrics)
    for code in (1, 2, 3):
        hear(RecoveryFinished("disk", Repair((Step.RUN,)), Outcome.FAILED, 1, 3, exit_code=code))
    labels = {"target": "disk", "action": "run", "result": "failed"}
    assert metrics.registry.get_sample_value("supervisor_recovery_actions_total", labels) == 3
