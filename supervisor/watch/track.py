"""One probe's track: Kubernetes' threshold semantics, a warning and an unknown level, and the
start-up grace. Pure (times are passed in)."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.model import ProbeResult, ProbeView, Status


@dataclass(slots=True)
class ProbeTrack:
    """Kubernetes' threshold semantics for one probe, plus a warning and an unknown level.

    A probe turns failing after `failure_threshold` consecutive failures and passing again
    after `success_threshold` consecutive non-failures; one blip changes nothing. A warning
    answered, so it counts as a non-failure (it never leads to recovery) but shows as warn.
    An unknown result (the check could not tell) counts neither way.
    """

    failure_threshold: int = 3
    success_threshold: int = 1
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    failing: bool = False
    last: ProbeResult | None = None
    level: Status | None = None  # the settled level; None until one is known
    settled: ProbeResult | None = None  # the result that set it (its words explain it)

    grace_s: float = 0.0  # start-up grace (Kubernetes' startup probe), 0: none
    grace_until: float | None = None  # monotonic; None once the first pass ended it

    def start_grace(self, now: float) -> None:
        """A new process: failures do not count until a pass, or until the grace is over."""
        self.grace_until = now + self.grace_s if self.grace_s > 0 else None

    def in_grace(self, now: float) -> bool:
        """True while a new process has not passed yet and its grace lasts."""
        return self.grace_until is not None and now < self.grace_until

    def expire(self, now: float) -> bool:
        """End a grace that ran out; a process that failed all along is failing at once."""
        if self.grace_until is None or now < self.grace_until:
            return False
        self.grace_until = None
        last = self.last
        if last is not None and last.status is Status.FAIL:
            self.consecutive_failures = max(self.consecutive_failures, self.failure_threshold)
            self.failing = True
            self.level, self.settled = Status.FAIL, last
        return True

    def record(self, result: ProbeResult, now: float = 0.0) -> None:
        """Count one result and flip `failing` when a threshold is reached."""
        self.last = result
        status = result.status
        if self.grace_until is not None:
            if status is Status.FAIL and now < self.grace_until:
                return  # starting: not counted (the unit dying still counts, in unit_verdict)
            if status is Status.FAIL:
                self.expire(now)
                return
            if status is not Status.UNKNOWN:
                self.grace_until = None  # the first answer ends the grace
        if status is Status.UNKNOWN:
            self.level, self.settled = Status.UNKNOWN, result
            return
        if status is Status.FAIL:
            self.consecutive_failures += 1
            self.consecutive_successes = 0
            if result.stuck:  # proved stuck, not slow: waiting for more failures adds nothing
                self.consecutive_failures = max(self.consecutive_failures, self.failure_threshold)
            if self.consecutive_failures >= self.failure_threshold:
                self.failing = True
        else:
            self.consecutive_successes += 1
            self.consecutive_failures = 0
            if self.failing and self.consecutive_successes >= self.success_threshold:
                self.failing = False
        if self.failing or status is not Status.FAIL:
            self.level, self.settled = (Status.FAIL if self.failing else status), result
        # else: an unconfirmed failure keeps the level it had (one blip changes nothing)

    def reset(self) -> None:
        """Forget everything (a new process of the unit)."""
        self.consecutive_failures = self.consecutive_successes = 0
        self.failing = False
        self.last = self.settled = None
        self.level = None
        self.grace_until = None

    @property
    def suspect(self) -> bool:
        """Failed at least once but not yet confirmed: re-probe soon (fast confirm)."""
        return not self.failing and self.consecutive_failures > 0

    def view(self, probe: str, kind: str) -> ProbeView:
        """The probe as a snapshot shows it (an unconfirmed failure shows as warn)."""
        last = self.last
        if last is None:
            status, output = Status.UNKNOWN, "not run yet"
        elif self.grace_until is not None and last.status is Status.FAIL:
            status, output = Status.WARN, f"starting: {last.output}"
        else:
            status = Status.WARN if self.suspect else (self.level or Status.UNKNOWN)
            output = last.output
        return ProbeView(
            probe=probe,
            kind=kind,
            status=status,
            output=output,
            consecutive_failures=self.consecutive_failures,
            observed_value=last.observed_value if last else None,
            observed_unit=last.observed_unit if last else None,
            source=last.source if last else None,
            perfdata=last.perfdata if last else (),
        )
