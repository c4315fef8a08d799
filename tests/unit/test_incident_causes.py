"""An incident in /history carries the cause and last lines of the death that opened it."""

from __future__ import annotations

from supervisor.history import report
from supervisor.history.report import DeathNote
from supervisor.history.uptime import Span

T0 = 1_800_000_000.0


def test_the_death_that_opened_an_incident_explains_it() -> None:
    spans = [
        Span("pass", T0, T0 + 100),
        Span("fail", T0 + 100, T0 + 160, "failed (failed), result exit-code"),
        Span("pass", T0 + 160, T0 + 400),
        Span("fail", T0 + 400, T0 + 500, "probe timed out"),
    ]
    deaths = [
        DeathNote(T0 + 100.2, "exited with status 3 after 1 min 40 s", ("FATAL gone",)),
        DeathNote(T0 + 130, "exited with status 3 after 2 s", ("FATAL again",)),  # same incident
        DeathNote(T0 + 50, "killed by SIGKILL", ()),  # long before: another story
    ]
    found = report.incidents("trader", spans, T0 + 500, live=True, deaths=deaths)
    hang, crash = found  # newest first
    assert "cause" not in hang  # a hang is no death: no cause from systemd
    assert crash["cause"] == "exited with status 3 after 1 min 40 s"
    assert crash["log"] == ["FATAL gone"]


def test_a_death_seen_just_before_the_status_flipped_still_counts() -> None:
    spans = [Span("pass", T0, T0 + 10), Span("fail", T0 + 10, T0 + 20, "failed")]
    deaths = [DeathNote(T0 + 9.5, "killed by SIGKILL", ("last",))]
    (incident,) = report.incidents("x", spans, T0 + 20, live=True, deaths=deaths)
    assert incident["cause"] == "killed by SIGKILL"
