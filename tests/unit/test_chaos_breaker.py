"""The chaos run's checks on the breaker and the supervisor's own alerts, on records made by
hand (pure parts of devtools.chaos.verdict)."""

from __future__ import annotations

from devtools.chaos.periods import periods
from devtools.chaos.plan import Kind, Planned
from devtools.chaos.record import Fault, HealthSample, Life, Message, Record
from devtools.chaos.verdict import Check, judge
from supervisor.alerts.policy import Alert, Severity, format_html

T0 = 1_700_000_000.0
CHATS = (1, 2)
HOST = "host CPU 95% > 90%"


def sample(at: float, note: str = "", life: int = 1) -> HealthSample:
    return HealthSample(at, 0.003, 200, {"trader": "pass"}, {}, note, life)


def paused(reason: str = HOST, start: float = 30.0, end: float = 60.0) -> Record:
    """/health 10 times a second for 100 s; the breaker open on `reason` from `start` to `end`."""
    rec = Record(seed=1, began=T0, started=T0, finished=T0 + 100, chats=CHATS)
    rec.lives = [Life(1, 50, T0 - 5, ready=T0 - 4, watchdog=[T0 + i for i in range(0, 100, 5)])]
    note = f"breaker open: {reason}; probes paused"
    rec.health = [sample(T0 + i / 10, note if start <= i / 10 < end else "") for i in range(1000)]
    return rec


def check(rec: Record, name: str) -> Check:
    return next(c for c in judge(rec).checks if c.name == name)


def send(rec: Record, alert: Alert, received: float) -> None:
    rec.messages += [Message(received, chat, format_html(alert, "box")) for chat in CHATS]


def breaker_alert(at: float, reason: str = HOST) -> Alert:
    return Alert("breaker", "supervisor", Severity.WARNING, "open", reason, "probes paused", at, at)


HOST_CHECK = "breaker paused on host CPU only when it was busy"


def test_a_breaker_period_is_read_from_health_with_its_bounds() -> None:
    (p,) = periods(paused())
    assert p.reason == HOST
    assert (p.after, p.first, p.last, p.until) == (T0 + 29.9, T0 + 30.0, T0 + 59.9, T0 + 60.0)


def test_a_pause_on_host_cpu_needs_the_host_busy_by_the_runs_own_samples() -> None:
    """The breaker trips on host CPU over 90 % held 10 s: the run's own readings over the 10 s
    before /health said so must average that much, or the pause was false."""
    rec = paused()
    rec.host_cpu = [(T0 + i, 97.0 if 15 <= i <= 30 else 20.0) for i in range(100)]
    assert check(rec, HOST_CHECK).ok
    rec.host_cpu = [(T0 + i, 40.0) for i in range(100)]
    found = check(rec, HOST_CHECK)
    assert not found.ok and "measured the host at 40%" in found.problems[0]
    rec.host_cpu = []  # measured nothing: cannot be vouched for
    assert not check(rec, HOST_CHECK).ok
    # A pause on our own CPU is judged elsewhere ("probes never paused by our own CPU").
    own = paused("own CPU 3.3% > budget 1%")
    assert check(own, HOST_CHECK).ok


MEMORY_CHECK = "breaker paused on host memory only when it was full"


def test_a_pause_on_host_memory_needs_the_host_full_by_the_runs_own_meminfo() -> None:
    """The breaker trips on host memory over 85 %: the run's own /proc/meminfo readings up to
    when /health first said so must reach that, or the pause was false."""
    rec = paused("host memory 88% > 85%")
    rec.host_memory = [(T0 + i, 88.0 if 25 <= i <= 60 else 50.0) for i in range(100)]
    assert check(rec, MEMORY_CHECK).ok
    assert check(rec, MEMORY_CHECK).detail.startswith("1 pauses on host memory")
    rec.host_memory = [(T0 + i, 60.0) for i in range(100)]
    found = check(rec, MEMORY_CHECK)
    assert not found.ok and "memory at most 60% in use" in found.problems[0]
    rec.host_memory = [(T0 + i, 90.0) for i in range(31, 100)]  # only after it opened
    assert not check(rec, MEMORY_CHECK).ok
    # A pause on host CPU is judged by the CPU check, not this one.
    assert check(paused(), MEMORY_CHECK).ok


def test_a_breaker_alert_must_match_a_period_health_showed() -> None:
    rec = paused()
    rec.host_cpu = [(T0 + i, 97.0) for i in range(100)]
    send(rec, breaker_alert(T0 + 30), T0 + 30.2)
    resolved = Alert(
        "breaker",
        "supervisor",
        Severity.RESOLVED,
        "resolved after 30s",
        at=T0 + 60,
        opened_at=T0 + 30,
    )
    send(rec, resolved, T0 + 60.1)
    assert check(rec, "alerts: breaker alerts match /health").ok
    late = paused()
    send(late, breaker_alert(T0 + 75), T0 + 75.2)  # no breaker open then
    found = check(late, "alerts: breaker alerts match /health")
    assert not found.ok and len(found.problems) == 2  # in each chat
    other = paused()
    send(other, breaker_alert(T0 + 30, "host memory 90% > 85%"), T0 + 30.2)  # not its reason
    assert not check(other, "alerts: breaker alerts match /health").ok


def test_a_digest_names_only_what_the_run_caused() -> None:
    rec = paused()
    rec.host_cpu = [(T0 + i, 97.0) for i in range(100)]
    hang = Fault(Planned(1, 0.0, Kind.HANG, "trader"), start=T0 + 10, lifted=T0 + 10)
    rec.faults = [hang]
    held = ("trader: warning failing", "supervisor: warning open")
    digest = Alert(
        "digest",
        "supervisor",
        Severity.INFO,
        "2 alerts held back by the rate limit",
        at=T0 + 70,
        opened_at=T0 + 20,
        actions=held,
    )
    send(rec, digest, T0 + 70.1)
    assert check(rec, "alerts: digests name only what happened").ok
    rec.faults = []  # trader was never faulted
    found = check(rec, "alerts: digests name only what happened")
    assert not found.ok and "trader: warning failing" in found.problems[0]
