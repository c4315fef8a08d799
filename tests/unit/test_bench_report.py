"""The benchmark's report: targets judged pass or miss, and the Markdown tables."""

from __future__ import annotations

from typing import Any

from devtools.bench.report import evaluate, fmt_outcome, markdown, ratio
from devtools.bench.stats import outcome, percentiles

MACHINE = {
    "supervisor": "0.1.0",
    "commit": "abc1234",
    "source": "0123456789ab",
    "source_end": "0123456789ab",
    "cores": 2,
    "cpu": "Test CPU",
    "kernel": "6.1.0",
    "python": "Python 3.11.7",
    "systemd": "systemd 252",
    "monit": "Monit version 5.33.0",
    "wrk": "wrk 4.1.0",
    "loadavg_start": "0.10 0.20 0.30",
    "loadavg_end": "0.40 0.50 0.60",
}


def results() -> dict[str, Any]:
    """A --quick run with detection and recovery only (figures made up)."""
    return {
        "machine": dict(MACHINE),
        "settings": {"quick": True, "seed": 7, "idle_window_s": 5.0, "wrk_s": 3},
        "runtime_s": 61.0,
        "detection": {
            "snapshot_ms": percentiles([2.0, 3.0, 150.0]),
            "health_ms": percentiles([3.0, 4.0, 5.0]),
        },
        "recovery": {
            "dead": {"supervisor": outcome([0.5, 0.7], [], 60.0)},
            "hung": {
                "supervisor": outcome([9.0], [], 60.0),
                "monit": outcome([15.0], [], 60.0),
            },
            "stale": {},
            "orphan": {
                "supervisor": outcome([1.2], [], 60.0),
                "monit": outcome([], ["not serving after 6 s; Monit ran it 2 times"], 6.0),
            },
        },
    }


def test_fmt_outcome_and_ratio() -> None:
    ours, theirs = outcome([0.5, 0.7], [], 60.0), outcome([1.2], [], 60.0)
    assert fmt_outcome(ours) == "0.60 s (0.50-0.70, n=2)"
    assert fmt_outcome(outcome([12.5], ["x"], 60.0)) == "12.5 s (12.50-12.50, n=1); 1 not recovered"
    assert fmt_outcome(outcome([], ["x"], 6.0)) == "not recovered within 6 s"
    assert fmt_outcome(None) == "not run"
    assert ratio(ours, theirs) == "0.50x"
    assert ratio(ours, outcome([], ["x"], 6.0)) == "n/a (they did not recover)"
    assert ratio(ours, None) == "n/a"


def test_evaluate_judges_only_the_targets_with_figures() -> None:
    rows = {row["target"]: row for row in evaluate(results())}
    assert set(rows) == {
        "detection p99 (kill -9 -> snapshot `since`)",
        "detection p99 (kill -9 -> first GET /health)",
        "dead unit (Restart=no) serving again, median",
        "hung process recovered (defaults), median",
        "hung: supervisor / Monit (3 failures each)",
    }
    assert rows["detection p99 (kill -9 -> snapshot `since`)"]["result"] == "miss"
    assert rows["detection p99 (kill -9 -> first GET /health)"]["result"] == "pass"
    assert rows["dead unit (Restart=no) serving again, median"]["measured"] == "0.60 s"
    assert rows["hung: supervisor / Monit (3 failures each)"] == {
        "target": "hung: supervisor / Monit (3 failures each)",
        "measured": "0.60x",
        "goal": "≤ 0.75x",
        "result": "pass",
    }


def test_markdown_has_the_header_tables_notes_and_targets() -> None:
    r = results()
    r["targets"] = evaluate(r)
    text = markdown(r)
    lines = text.splitlines()
    assert lines[0].startswith("sidecar-supervisor 0.1.0 (abc1234, source 0123456789ab) on 2")
    assert lines[0].endswith("--quick run in 61 s, seed 7")
    assert "| measure |" not in text  # no startup or idle figures: no overhead table
    assert "| the first GET /health that says fail | 4.0 ms |" in text
    assert (
        "| orphan holding the dashboard's port | 1.20 s (1.20-1.20, n=1) "
        "| not recovered within 6 s | not run | n/a (they did not recover) | n/a |"
    ) in lines
    assert "- monit / orphan: not serving after 6 s; Monit ran it 2 times" in lines
    miss = "| detection p99 (kill -9 -> snapshot `since`) | 147.1 ms | < 100 ms | **miss** |"
    assert miss in lines  # p99 of 2, 3 and 150 ms, interpolated
    assert "WARNING" not in text


def test_markdown_warns_when_the_source_changed_during_the_run() -> None:
    r = results()
    r["machine"]["source_end"] = "ba9876543210"
    r["targets"] = []
    first = markdown(r).splitlines()[0]
    assert first.startswith("**WARNING: supervisor/ changed during the run")
