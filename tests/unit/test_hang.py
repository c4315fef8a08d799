"""A hang's evidence in words, from fake /proc readings: state, wchan, threads, CPU, sockets."""

from __future__ import annotations

from dataclasses import replace

from supervisor.probing.hang import Hang, Hangs, ProbeSaw, cpu_words, explain, state_words
from supervisor.probing.stuck import Reading

SAW = ProbeSaw("http", took_s=0.6, timeout_s=2.0, last_good_ago_s=14.2, usual_s=0.003)
STOPPED = Reading(
    at=10.0,
    port=5050,
    pids=(4242,),
    stopped=True,
    runnable=False,
    cpu_ns=123_000_000,
    queued=2,
    states=("T",),
    wchan="do_signal_stop",
    connections=1,
)


def test_a_stopped_dashboard_is_stopped_and_no_cpu_time_moved() -> None:
    readings = [STOPPED, replace(STOPPED, at=10.3), replace(STOPPED, at=10.6)]
    hang = explain(SAW, readings)
    assert hang.words == "hung: pid 4242 stopped (T), no CPU time moved in 0.6 s"
    assert hang.lines == (
        "probe: http no answer after 0.6 s (timeout 2 s); last good answer 14 s ago; "
        "usually answers in 3.0 ms",
        "process: pid 4242 stopped (T), waits in do_signal_stop, 1 thread",
        "CPU: no CPU time moved in 0.6 s (3 readings of /proc)",
        "connections: 1 open, 2 waiting to be accepted on port 5050",
    )


def test_a_busy_process_says_how_much_cpu_time_moved() -> None:
    busy = replace(STOPPED, stopped=False, runnable=True, states=("S", "R", "S"), wchan="")
    hang = explain(SAW, [busy, replace(busy, at=12.0, cpu_ns=busy.cpu_ns + 1_900_000_000)])
    assert hang.words == "hung: pid 4242 running (R), CPU time moved 1.9 s in 2.0 s"
    assert hang.lines[1] == "process: pid 4242 running (R), 3 threads"  # no wchan: none said


def test_the_most_telling_thread_state_wins() -> None:
    assert state_words(("S", "D", "R")) == "uninterruptible (D)"
    assert state_words(("S", "R")) == "running (R)"
    assert state_words(("S", "S")) == "sleeping (S)"
    assert state_words(("T", "t")) == "stopped (T)"
    assert state_words(("t",)) == "stopped by a debugger (t)"
    assert state_words(("S", "T")) == "sleeping (S)"  # else the main thread's
    assert state_words(()) == "state unknown"


def test_cpu_time_is_compared_only_over_the_same_process() -> None:
    assert cpu_words([STOPPED]) == "CPU time read once (nothing to compare)"
    other = replace(STOPPED, at=11.0, pids=(5151,))
    assert cpu_words([STOPPED, other]).startswith("the process changed during the failure")
    tiny = replace(STOPPED, at=12.0, cpu_ns=STOPPED.cpu_ns + 400_000)
    assert cpu_words([STOPPED, tiny]) == "CPU time moved 0.4 ms in 2.0 s"  # moved is moved


def test_no_owner_of_the_port_says_so() -> None:
    nobody = replace(STOPPED, pids=(), states=(), wchan="", connections=0, queued=0)
    hang = explain(SAW, [nobody])
    assert hang.words == "hung: no process of the unit listens on port 5050"


def test_a_probe_that_never_answered_and_whose_latency_is_unknown() -> None:
    saw = ProbeSaw("http", took_s=2.0, timeout_s=2.0, last_good_ago_s=None, usual_s=None)
    line = explain(saw, [STOPPED]).lines[0]
    assert line == (
        "probe: http no answer after 2.0 s (timeout 2 s); no good answer since the supervisor "
        "started"
    )


def test_a_hang_documents_like_a_death_and_the_latest_is_kept() -> None:
    hang = Hang("hung: pid 1 stopped (T), no CPU time moved in 0.5 s", ("a", "b"))
    assert hang.document() == {"kind": "hang", "words": hang.words, "ranS": None}
    assert hang.log() == {"lines": ["a", "b"], "source": "probe and /proc", "unavailable": ""}
    hangs = Hangs()
    assert hangs.latest("dash") is None
    hangs.seen("dash", hang, 100.0)
    newer = Hang("hung: later", ())
    hangs.seen("dash", newer, 130.0)
    assert hangs.latest("dash") == (130.0, newer)
