"""A death's cause in plain words, from systemd's properties; last lines bounded; secrets hidden."""

from __future__ import annotations

import pytest

from supervisor.redaction import scrub_shapes
from supervisor.watch.cause import (
    ExitFacts,
    Kind,
    bound,
    died,
    explain,
    facts_from,
    output_file,
    signal_name,
    size,
    span,
)

START = 1_800_000_000_000_000  # microseconds since the epoch
GIB = 1024**3


def facts(
    result: str, code: int = 0, status: int = 0, ran_s: float = 0.0, **kw: object
) -> ExitFacts:
    exited = START + int(ran_s * 1_000_000) if ran_s else 0
    started = START if ran_s else 0
    return ExitFacts(
        "trader.service",
        result,
        code,
        status,
        started,
        exited,
        **kw,  # type: ignore[arg-type]
    )


def test_exit_status_and_how_long_it_ran() -> None:
    cause = explain(facts("exit-code", 1, 3, ran_s=2 * 3600 + 14 * 60 + 5))
    assert cause.kind is Kind.EXITED
    assert cause.words == "exited with status 3 after 2 h 14 min"
    assert cause.ran_s == pytest.approx(8045.0)


def test_killed_by_a_signal_names_it() -> None:
    assert explain(facts("signal", 2, 9)).words == "killed by SIGKILL"
    assert explain(facts("signal", 2, 9, ran_s=12)).words == "killed by SIGKILL after 12 s"


def test_core_dump_names_the_signal() -> None:
    cause = explain(facts("core-dump", 3, 11))
    assert (cause.kind, cause.words) == (Kind.CORE, "dumped core (SIGSEGV)")


def test_oom_kill_from_systemd_with_memory_and_limit() -> None:
    cause = explain(facts("oom-kill", 2, 9, memory_bytes=int(1.9 * GIB), memory_max=2 * GIB))
    assert cause.kind is Kind.OOM
    assert cause.words == "killed by the kernel's OOM killer at 1.9 GiB (MemoryMax 2.0 GiB)"


def test_sigkill_with_an_oom_kill_in_this_run_is_an_oom_kill() -> None:
    # systemd can report the SIGKILL before the kernel's OOM notice reaches it.
    assert explain(facts("signal", 2, 9, oom_kills=1)).kind is Kind.OOM
    # None (unknown) and 0 (none in this run, whatever the cgroup's total) change nothing.
    assert explain(facts("signal", 2, 9, oom_kills=0)).kind is Kind.SIGNAL
    assert explain(facts("signal", 2, 9, oom_kills=None)).kind is Kind.SIGNAL


def test_watchdog_timeout_and_start_limit_win_over_the_signal() -> None:
    assert explain(facts("watchdog", 2, 6)).words == (
        "killed by its watchdog (no WATCHDOG=1 ping in time)"
    )
    assert explain(facts("timeout", 2, 15)).kind is Kind.TIMEOUT
    assert explain(facts("start-limit-hit")).kind is Kind.START_LIMIT


def test_an_unknown_result_is_said_as_systemd_says_it() -> None:
    cause = explain(facts("exec"))
    assert (cause.kind, cause.words) == (Kind.OTHER, "ended with result exec")


def test_no_duration_when_a_newer_run_began() -> None:
    # The exit timestamp belongs to the run before the one whose start we read.
    f = ExitFacts("x.service", "exit-code", 1, 1, started_usec=START, exited_usec=START - 5)
    assert explain(f).ran_s is None
    assert explain(f).words == "exited with status 1"


def test_words_for_spans_sizes_and_signals() -> None:
    assert span(3.25) == "3.2 s"
    assert span(192) == "3 min 12 s"
    assert span(180) == "3 min"
    assert span(90000) == "1 d 1 h"
    assert size(512 * 1024**2) == "512 MiB"
    assert size(800 * 1024) == "800 KiB"
    assert signal_name(15) == "SIGTERM"
    assert signal_name(40) == "signal 40"


def test_facts_from_service_properties() -> None:
    props = {
        "Result": "exit-code",
        "ExecMainCode": 1,
        "ExecMainStatus": 3,
        "ExecMainStartTimestamp": START,
        "ExecMainExitTimestamp": START + 5_000_000,
        "NRestarts": 4,
        "MemoryCurrent": 2**64 - 1,  # unset once the cgroup is gone
        "MemoryMax": 2**64 - 1,  # infinity
        "StandardOutput": "append",
        "StandardOutputFileDescriptorName": "/var/log/trader.log",
    }
    f = facts_from("trader.service", {"InvocationID": b"\xab\x12"}, props)
    assert (f.code, f.status, f.n_restarts, f.invocation) == (1, 3, 4, "ab12")
    assert f.memory_bytes is None and f.memory_max is None
    assert f.output_file == "/var/log/trader.log"
    assert explain(f).words == "exited with status 3 after 5.0 s"


def test_output_file_only_for_file_outputs() -> None:
    assert output_file({"StandardOutput": "journal"}) == ""
    assert output_file({"StandardOutput": "file:/tmp/out.log"}) == "/tmp/out.log"
    assert output_file({"StandardOutput": "truncate", "StandardOutputFileDescriptorName": ""}) == ""


def test_died_needs_a_run_and_a_bad_result() -> None:
    assert died(True, "failed", "exit-code")
    assert died(True, "activating", "signal")  # Restart= at work: auto-restart
    assert not died(True, "inactive", "success")  # a clean stop
    assert not died(False, "failed", "exit-code")  # already told for this run
    assert not died(True, "active", "exit-code")


def test_bound_keeps_the_newest_lines_cut_to_width() -> None:
    lines = [f"line {i}" for i in range(50)] + ["", "x" * 500]
    kept = bound(lines, count=5, width=40, total=10_000)
    assert kept[:-1] == ("line 46", "line 47", "line 48", "line 49")
    assert kept[-1] == "x" * 39 + "…"


def test_bound_drops_older_lines_beyond_the_total() -> None:
    kept = bound(["a" * 100, "b" * 100, "c" * 100], count=20, width=200, total=250)
    assert kept == ("b" * 100, "c" * 100)


def test_secret_shapes_are_hidden() -> None:
    line = (
        "connecting with bot 123456789:AAHk-ExampleExampleExample_Secret0 "
        "api_key=sk-live-4242 password: hunter22 Authorization: Bearer abcdefghijkl"
    )
    out = scrub_shapes(line)
    for secret in ("AAHk-Example", "sk-live-4242", "hunter22", "abcdefghijkl"):
        assert secret not in out
    assert "api_key=<secret>" in out
    assert scrub_shapes("FATAL lost connection to exchange") == "FATAL lost connection to exchange"
