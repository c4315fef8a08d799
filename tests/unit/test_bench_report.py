"""The benchmark's report: targets judged pass or miss, and the Markdown tables."""

from __future__ import annotations

from typing import Any

from devtools.bench.report import evaluate, fmt_outcome, markdown, ratio
from devtools.bench.stats import outcome, percentiles, rss_growth, summary

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


def history(p99_page: float, late: int) -> dict[str, Any]:
    """A history section's results (figures made up)."""

    def level(path: str, p99: float) -> dict[str, Any]:
        return {
            "path": path,
            "connections": 10,
            "rps": 2500.0,
            "p50_ms": 1.0,
            "p90_ms": 2.0,
            "p99_ms": p99,
            "non_2xx": 0,
            "served": 5000,
            "throttled": 0,
            "other": 0,
            "socket_errors": 0,
            "watchdog_max_gap_s": 1.01,
        }

    return {
        "rss": rss_growth([41.0, 42.0, 41.5], [38.0, 38.5, 39.5]),
        "latency": {
            "events": 100_000,
            "file_mb": 11.1,
            "levels": [level("/", p99_page), level("/events?limit=100", 4.0)],
        },
        "burst": {
            "events": 1000,
            "watchdog_usec": 2_000_000,
            "ping_interval_s": 1.0,
            "limit_s": 1.25,
            "max_gap_s": summary([1.004, 1.3, 1.01]),
            "late": late,
            "loop_held_ms": summary([3.7, 4.1, 20.0]),
            "dropped": 0,
        },
    }


def test_history_budgets_are_judged_each_on_its_own() -> None:
    r = results()
    r["history"] = history(p99_page=25.0, late=1)
    rows = {row["target"]: row for row in evaluate(r)}
    assert rows["RSS growth with the history on, median"]["measured"] == "+3.0 MB"
    assert rows["RSS growth with the history on, median"]["result"] == "pass"  # at most 3
    page = rows["GET / at 10 clients, 100,000 events stored"]
    assert page["measured"] == "p99 25.00 ms, 2,500 served/s, 0 throttled"
    assert page["result"] == "miss"
    assert rows["GET /events?limit=100 at 10 clients, 100,000 events stored"]["result"] == "pass"
    burst = rows["watchdog: longest ping gap around a burst of 1,000 events"]
    assert burst["measured"] == "1.300 s (1 of 3 bursts late)"
    assert burst["goal"] == "≤ 1.25 s (pings due every 1 s)"
    assert burst["result"] == "miss"
    r["history"] = history(p99_page=5.0, late=0)
    assert all(row["result"] == "pass" for row in evaluate(r) if "stored" in row["target"])


def test_markdown_prints_the_history_tables() -> None:
    r = results()
    r["history"] = history(p99_page=5.0, late=0)
    r["targets"] = evaluate(r)
    lines = markdown(r).splitlines()
    assert "| growth (on - off, per pair) | 3.000 MB | 2.000 | 3.500 | 3 |" in lines
    assert "| / | 2,500 | 0 | 0 | 1.00 ms | 2.00 ms | 5.00 ms | 0 | 1.01 s |" in lines
    assert "| event loop held by the burst | 4.100 ms | 3.700 | 20.000 | 3 |" in lines


def load_level(conns: int, served: int, throttled: int, other: int) -> dict[str, Any]:
    """One wrk level of the load section (figures made up)."""
    return {
        "connections": conns,
        "threads": min(2, conns),
        "rps": served / 3.0,
        "wrk_rps": (served + throttled + other) / 3.0,
        "served": served,
        "throttled": throttled,
        "other": other,
        "non_2xx": throttled + other,
        "p50_ms": 0.5,
        "p90_ms": 0.9,
        "p99_ms": 2.0,
        "socket_errors": 0,
        "watchdog_max_gap_s": 0.5,
        "probe_runs": 3,
        "probe_runs_expected": 1.8,
    }


def load(*levels: dict[str, Any]) -> dict[str, Any]:
    return {
        "levels": list(levels),
        "watchdog_usec": 2_000_000,
        "watchdog_limit_s": 1.25,
        "watchdog_max_gap_s": 0.5,
        "probe_runs": {"a": 1.0},
        "probe_runs_expected_each": 0.6,
        "probes_on_schedule": True,
        "statuses_after": {},
    }


def test_load_counts_only_served_answers_and_429s_apart() -> None:
    r = results()
    r["load"] = load(load_level(1, 30, 9000, 0), load_level(10, 45, 30_000, 0))
    rows = {row["target"]: row for row in evaluate(r)}
    ten = rows["GET /health at 10 connections"]
    assert ten["measured"] == "15 served/s, 30,000 throttled, 0 other, p99 2.00 ms"
    assert ten["result"] == "pass"  # throttling is the budget at work, not a failure
    r["targets"] = list(rows.values())
    lines = markdown(r).splitlines()
    assert (
        "| 10 (-t2) | 15 | 45 | 30,000 | 0 | 0.50 ms | 0.90 ms | 2.00 ms | 0 | 0.50 s | 3 (1.8) |"
        in lines
    )
    r["load"] = load(load_level(10, 45, 30_000, 2))
    rows = {row["target"]: row for row in evaluate(r)}
    assert rows["GET /health at 10 connections"]["result"] == "miss"  # an error answer


def test_markdown_keeps_the_finished_sections_when_a_later_one_failed() -> None:
    r = results()
    r["load"] = load(load_level(10, 45, 30_000, 0))
    r["failed"] = {"section": "history", "error": "BenchError: wrk failed"}
    r["targets"] = evaluate(r)
    text = markdown(r)
    assert "**Section `history` failed (BenchError: wrk failed); the figures below" in text
    assert "| 10 (-t2) | 15 | 45 | 30,000 |" in text
    assert "GET /health at 10 connections" in text


def test_the_detection_table_shows_what_waiting_for_the_cause_cost() -> None:
    r = results()
    r["detection"]["cause_wait_ms"] = percentiles([12.0, 20.0, 480.0])
    r["detection"]["alert_ms"] = percentiles([15.0, 25.0, 490.0])
    rows = [
        line for line in markdown(r).splitlines() if line.startswith(("| the alert", "| the fail"))
    ]
    assert rows[0].startswith("| the alert's wait for cause and last lines (`causeWaitS`, max 0.5")
    assert rows[0].endswith("| 480.0 ms | 3 |")
    assert rows[1].startswith("| the fail (`since`) -> the alert queued with them | 25.0 ms")
    assert "causeWaitS" not in markdown(results())  # an older result: no such row
