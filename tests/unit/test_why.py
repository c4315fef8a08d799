"""`supervisor why`: the last failure from /events: a death's cause and lines, or a reason."""

from __future__ import annotations

from typing import Any

from supervisor.why import explain


def death(event_id: int, words: str, lines: list[str]) -> dict[str, Any]:
    return {
        "id": event_id,
        "time": "2026-12-07T04:20:00Z",
        "kind": "unit",
        "data": {
            "unit": "crasher.service",
            "result": "exit-code",
            "nRestarts": 2,
            "cause": {"kind": "exited", "words": words},
            "log": {"lines": lines, "source": "journal", "unavailable": ""},
        },
    }


def failing(event_id: int, reason: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "time": "2026-12-07T04:30:00Z",
        "kind": "status",
        "data": {"from": "pass", "to": "fail", "reason": reason},
    }


def test_a_death_with_its_lines() -> None:
    events = [
        failing(1_000_001, "failed (failed)"),
        death(1_000_000, "exited with status 3", ["FATAL x"]),
    ]
    text = explain("crasher", events)
    assert text.startswith("crasher: exited with status 3\n")
    assert "result exit-code, restarts 2" in text
    assert text.endswith("  last lines (journal):\n    FATAL x")


def test_a_later_failure_without_a_death_is_told_by_its_reason() -> None:
    events = [
        failing(900_000_000, "http: timed out after 2.0 s"),
        death(1, "killed by SIGKILL", []),
    ]
    assert "failing since" in explain("dash", events)
    assert explain("dash", events).endswith("http: timed out after 2.0 s")


def test_nothing_to_explain() -> None:
    assert explain("quiet", [{"id": 1, "kind": "status", "data": {"to": "pass"}}]) == ""


def test_unavailable_lines_say_why() -> None:
    event = death(1, "killed by SIGKILL", [])
    event["data"]["log"]["unavailable"] = "journalctl failed: No journal files were found."
    assert explain("t", [event]).endswith(
        "no log lines: journalctl failed: No journal files were found."
    )


def test_a_hang_is_told_by_its_reason_and_its_evidence() -> None:
    hang = failing(900_000_000, "http: no answer after 0.6 s; stuck: pid 7 stopped (state T)")
    hang["data"]["cause"] = {"kind": "hang", "words": "hung: pid 7 stopped (T), no CPU time moved"}
    hang["data"]["log"] = {"lines": ["process: pid 7 stopped (T)"], "source": "probe and /proc"}
    text = explain("dash", [hang, death(1, "killed by SIGKILL", [])])
    lines = text.splitlines()
    assert lines[0].startswith("dash: failing since ")
    assert lines[1:] == [
        "  cause: hung: pid 7 stopped (T), no CPU time moved",
        "  evidence (probe and /proc):",
        "    process: pid 7 stopped (T)",
    ]
