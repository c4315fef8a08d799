"""The runner with stuck evidence: a real port that never answers, fake /proc readings."""

from __future__ import annotations

import random
import socket
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace

import pytest

from supervisor.config import parse
from supervisor.model import (
    ActiveState,
    ProbeResult,
    Status,
    SystemClock,
    UnitResources,
    UnitState,
)
from supervisor.probing import probes, runner
from supervisor.probing.hang import Hang
from supervisor.probing.stuck import Reading
from supervisor.runtime import tls
from supervisor.watch.health import HealthModel, TargetSpec

TIMEOUT = 1.0
CGROUP = "/app.slice/dashboard.service"
UNIT = UnitState(
    "dashboard.service", active_state=ActiveState.ACTIVE, main_pid=4242, control_group=CGROUP
)


class FakeProc:
    """The /proc boundary: readings made by `make` from the number of the reading."""

    def __init__(self, make: Callable[[int], Reading]) -> None:
        self.make = make
        self.asked: list[tuple[str, int]] = []

    def listener(self, control_group: str, port: int, at: float) -> Reading:
        self.asked.append((control_group, port))
        return replace(self.make(len(self.asked)), at=at, port=port)

    def pids(self, control_group: str) -> list[int]:
        return []

    def cpu_seconds(self, pids: list[int]) -> float:
        return 0.0

    def rss_bytes(self, pids: list[int]) -> int:
        return 0


BASE = Reading(at=0, port=0, pids=(4242,), stopped=False, runnable=False, cpu_ns=0, queued=1)


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A port that accepts connections in the kernel and never answers (nobody accepts)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield int(s.getsockname()[1])
    s.close()


@pytest.fixture
async def session() -> AsyncIterator[Callable[[], object]]:
    get = probes.session_factory()
    yield get
    await get().close()


def plan(port: int, proc: FakeProc, session: object, evidence: bool = True) -> runner.ProbeRun:
    text = (
        'state_dir = "/nonexistent"\n[[targets]]\nname = "dashboard"\n'
        'unit = "dashboard.service"\n[[targets.probes]]\ntype = "http"\n'
        f'url = "http://127.0.0.1:{port}/health"\ntimeout_s = {TIMEOUT}\n'
        f"stuck_evidence = {str(evidence).lower()}\n"
    )
    config = parse(tomllib.loads(text), env={})
    model = HealthModel([TargetSpec("dashboard", "dashboard.service")], SystemClock())
    (run,) = runner.plan(config, model, context(proc, session), random.Random(1))
    return run


def context(
    proc: FakeProc, session: object, examining: Callable[[], None] = lambda: None
) -> runner.ProbeContext:
    return runner.ProbeContext(
        clock=SystemClock(),
        session=session,  # type: ignore[arg-type]
        tls=tls.client,
        reader=proc,
        read_unit=lambda _unit: probes_unused,
        unit_state=lambda _name: UNIT,
        paused=lambda: False,
        observe=lambda _result: None,
        wake=lambda: None,
        examining=examining,
    )


async def probes_unused() -> UnitResources:
    raise AssertionError("no resources probe here")


async def probe(run: runner.ProbeRun, proc: FakeProc, session: object) -> ProbeResult:
    return await runner.probe(run, context(proc, session))


async def test_a_stopped_owner_ends_the_probe_before_its_timeout(
    mute_port: int, session: object
) -> None:
    proc = FakeProc(lambda _n: replace(BASE, stopped=True))
    run = plan(mute_port, proc, session)
    result = await probe(run, proc, session)
    assert result.stuck
    assert result.status is Status.FAIL
    assert result.duration_s < TIMEOUT
    assert result.output.startswith("http: no answer after 0.")
    assert result.output.endswith("stuck: pid 4242 stopped (state T) for 0.5 s, nothing answers")
    assert set(proc.asked) == {(CGROUP, mute_port)}


async def test_reading_proc_for_a_hang_is_told_as_handling(mute_port: int, session: object) -> None:
    # The breaker must not count this CPU against the budget (`guard.activity`): the soak's
    # hang detected after 11.6 s opened it on "own CPU 4.9 %" and hid the repair for 60 s.
    proc = FakeProc(lambda _n: BASE)
    told: list[int] = []
    run = plan(mute_port, proc, session)
    result = await runner.probe(run, context(proc, session, lambda: told.append(len(proc.asked))))
    assert result.stuck
    assert told and told == list(range(len(told)))  # told before each reading
    assert len(told) == len(proc.asked) - 1  # all but the last, read once the timeout is up


async def test_no_progress_makes_the_timeout_final(mute_port: int, session: object) -> None:
    proc = FakeProc(lambda _n: BASE)
    result = await probe(plan(mute_port, proc, session), proc, session)
    assert result.stuck
    assert result.output.startswith("http: timeout after 1.0 s; stuck: pid 4242 used 0 ms")


async def test_cpu_moving_leaves_a_plain_timeout(mute_port: int, session: object) -> None:
    proc = FakeProc(lambda n: replace(BASE, cpu_ns=n * 20_000_000))
    result = await probe(plan(mute_port, proc, session), proc, session)
    assert not result.stuck
    assert result.output == "http: timeout after 1.0 s"


async def test_evidence_off_never_reads_proc(mute_port: int, session: object) -> None:
    proc = FakeProc(lambda _n: replace(BASE, stopped=True))
    run = plan(mute_port, proc, session, evidence=False)
    result = await probe(run, proc, session)
    assert (result.stuck, result.output, proc.asked) == (False, "http: timeout after 1.0 s", [])


async def evidence_of(run: runner.ProbeRun, proc: FakeProc, session: object) -> list[Hang]:
    """The hangs the runner tells of while it runs `run` once."""
    told: list[tuple[str, Hang]] = []
    ctx = replace(context(proc, session), hung=lambda target, hang: told.append((target, hang)))
    await runner.probe(run, ctx)
    assert {target for target, _hang in told} <= {"dashboard"}
    return [hang for _target, hang in told]


async def test_a_stopped_owner_is_told_as_a_hang_with_its_evidence(
    mute_port: int, session: object
) -> None:
    proc = FakeProc(lambda _n: replace(BASE, stopped=True, states=("T",), wchan="do_signal_stop"))
    run = plan(mute_port, proc, session)
    run.latency.answered(0.004)
    (hang,) = await evidence_of(run, proc, session)
    assert hang.words.startswith("hung: pid 4242 stopped (T), no CPU time moved in 0.")
    assert hang.lines[0].startswith("probe: http no answer after 0.")
    assert hang.lines[0].endswith(
        "(timeout 1 s); no good answer since the supervisor started; usually answers in 4.0 ms"
    )
    assert hang.lines[1] == "process: pid 4242 stopped (T), waits in do_signal_stop, 1 thread"


async def test_a_slow_timeout_is_told_with_the_cpu_it_used(mute_port: int, session: object) -> None:
    proc = FakeProc(lambda n: replace(BASE, cpu_ns=n * 20_000_000, states=("R",)))
    (hang,) = await evidence_of(plan(mute_port, proc, session), proc, session)
    assert hang.words.startswith("hung: pid 4242 running (R), CPU time moved ")


async def test_no_evidence_no_hang_told(mute_port: int, session: object) -> None:
    proc = FakeProc(lambda _n: replace(BASE, stopped=True))
    assert await evidence_of(plan(mute_port, proc, session, evidence=False), proc, session) == []
