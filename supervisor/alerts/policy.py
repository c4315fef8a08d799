"""The alert policy, in the spirit of Alertmanager. Pure: no I/O, time from an injected clock.

An incident opens per target when it has failed `failure_threshold` rounds in a row (or at
once when recovery gives up); it is notified once, escalated from warning to critical when
recovery gives up or a critical target stays down `critical_after_s`, reminded no sooner than
`cooldown_s`, and closed with one resolved notice saying how long it lasted and what was done.
Silenced targets send nothing. A global rate limit holds the excess and later sends one
digest. Everything here round-trips through `export()`/`restore()` so a restart resumes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import Any

from supervisor.alerts import roots
from supervisor.alerts.incident import (
    Alert,
    Incident,
    Severity,
    alert_dict,
    alert_from,
    format_html,
)
from supervisor.alerts.rounds import DEFAULT_ROUND_S, SETTLE_S, failed_rounds, settled
from supervisor.config import AlertsConfig, DependenciesConfig
from supervisor.model import Clock, Status, TargetHealth
from supervisor.times import duration

_HOUR = 3600.0
__all__ = ["SETTLE_S", "Alert", "AlertPolicy", "Incident", "Severity", "duration", "format_html"]

SELF = "supervisor"  # the target of the supervisor's own alerts (breaker, restarts, digests)


_RANK = {Severity.NOTICE: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
_WHAT = {"health": "failing", "warn": "warn"}  # an incident's summary by its key's suffix


class AlertPolicy:
    """Decides which alerts to send now; the outbox and the sender do the rest."""

    def __init__(
        self,
        config: AlertsConfig,
        clock: Clock,
        round_s: dict[str, float],
        deps: DependenciesConfig | None = None,
    ) -> None:
        self._cfg = config
        self._deps = deps or DependenciesConfig()
        self._clock = clock
        self._round_s = round_s  # a target's probe period: how long one failed round lasts
        self.incidents: dict[str, Incident] = {}
        self.silences: dict[str, float] = {}  # target -> wall time the silence ends
        self._sent: deque[float] = deque()  # wall times of sends within the last hour
        self._held: list[Alert] = []

    def configure(
        self, config: AlertsConfig, round_s: dict[str, float], deps: DependenciesConfig
    ) -> None:
        """New settings after a reload; incidents, silences and the rate window stay."""
        self._cfg, self._deps = config, deps
        self._round_s = round_s

    # -- inputs ----------------------------------------------------------------------------

    def observe(self, t: TargetHealth, gave_up: bool) -> list[Alert]:
        """A target's latest health; returns the alerts to send now.

        A held target sends nothing (its incidents are forgotten when the hold ends, so a
        target that still fails then starts with fresh counts).
        """
        if t.hold is not None or t.blocked_by is not None:
            return []  # blocked: the root's alert speaks for it (and lists it)
        found = self._flapping(t) + self._failure(t, gave_up) + self._warning(t)
        now = self._clock.time()
        roots.account(self.incidents, t, now, settled(t, now))
        return self._gate(found + self._stopped(t))

    def forget(self, target: str) -> None:
        """Drop a target's incidents without a word (a hold on it ended)."""
        for key in [k for k, i in self.incidents.items() if i.target == target]:
            del self.incidents[key]

    def _flapping(self, t: TargetHealth) -> list[Alert]:
        """One alert when a target starts flapping, one "stable again" when it stops."""
        key = f"{t.name}:flapping"
        incident = self.incidents.get(key)
        now = self._clock.time()
        flap = t.flapping
        if flap is not None and incident is None:
            if f"{t.name}:health" in self.incidents:
                return []  # told once that failure is resolved: one incident at a time
            reason = f"{flap.count} failures in {duration(flap.span_s)}"
            incident = Incident(key=key, target=t.name, opened_at=flap.since, reason=reason)
            self.incidents[key] = incident
            return self._once(incident, Severity.WARNING, "flapping", t.recovery, now)
        if flap is None and incident is not None and t.status is not Status.UNKNOWN:
            del self.incidents[key]
            if incident.notified_at is None or self.silenced(t.name):
                return []
            took = duration(now - incident.opened_at)
            return [
                Alert(
                    key=key,
                    target=t.name,
                    severity=Severity.RESOLVED,
                    summary=f"stable again after {took} of flapping",
                    at=now,
                    opened_at=incident.opened_at,
                )
            ]
        return []

    def _stopped(self, t: TargetHealth) -> list[Alert]:
        """One notice when a stop on request lasts `stopped_notice_after_s`; a start ends it."""
        key = f"{t.name}:stopped"
        now = self._clock.time()
        if t.stopped_at is None:
            self.incidents.pop(key, None)  # started again: nothing to say
            return []
        if key in self.incidents or now - t.stopped_at < self._cfg.stopped_notice_after_s:
            return []
        incident = Incident(
            key=key, target=t.name, opened_at=t.stopped_at, severity=Severity.NOTICE.value
        )
        incident.reason = t.output
        self.incidents[key] = incident
        summary = f"stopped on request {duration(now - t.stopped_at)} ago"
        return self._once(incident, Severity.NOTICE, summary, "", now)

    def _once(
        self, incident: Incident, severity: Severity, summary: str, recovery: str, now: float
    ) -> list[Alert]:
        """The one alert of an incident that is never reminded."""
        if self.silenced(incident.target):
            return []
        incident.notified_at, incident.notified_severity = now, severity.value
        alert = Alert(
            key=incident.key,
            target=incident.target,
            severity=severity,
            summary=summary,
            reason=incident.reason,
            recovery=recovery,
            at=now,
            opened_at=incident.opened_at,
        )
        return [alert]

    def _failure(self, t: TargetHealth, gave_up: bool) -> list[Alert]:
        key = f"{t.name}:health"
        incident = self.incidents.get(key)
        now = self._clock.time()
        if t.flapping is not None and incident is None and not gave_up:
            return []  # no alert per crash: the flapping alert speaks for them (not give-up)
        if t.status is not Status.FAIL:
            if incident is None or t.status is Status.UNKNOWN:
                return []  # unknown: neither a new failure nor a recovery
            if not t.back or not settled(t, now):
                return []  # activating, starting, stopped, or up only a moment: not back yet
            if any(p.status is Status.UNKNOWN for p in t.probes):
                # Active again, but its probes have not judged the new process yet (a restart
                # in a crash loop, or our own restart): "resolved" would be a guess.
                return []
            incident.back_at = incident.back_at or now
            if incident.awaiting(now, self._deps.resolved_wait_s):
                return []  # resolved once its dependants came back (or fail on their own)
            return [self._resolve(incident, now)]  # pass, or a warning: no longer failing
        if incident is None:
            if not gave_up and (
                roots.freed_wait(t, now, self._deps.freed_wait_s)
                or self._rounds(t, now) < self._cfg.failure_threshold
            ):
                return []
            incident = Incident(key=key, target=t.name, opened_at=max(t.since, t.freed_at or 0))
            self.incidents[key] = incident
        # Down (again): every dependant is blocked by it, none is back yet.
        incident.back_at, incident.dependants = None, dict.fromkeys(t.dependants, "")
        incident.reason = t.output
        incident.severity = self._severity(t, incident, gave_up, now).value
        return self._notices(incident, t.recovery, now)

    def _warning(self, t: TargetHealth) -> list[Alert]:
        """A warning is its own, lower incident, and only when the user asked (on_warn)."""
        key = f"{t.name}:warn"
        incident = self.incidents.get(key)
        now = self._clock.time()
        if t.status is Status.WARN and self._cfg.on_warn and t.back:
            if incident is None:
                if self._rounds(t, now) < self._cfg.failure_threshold:
                    return []
                severity = Severity.NOTICE.value
                incident = Incident(key=key, target=t.name, opened_at=t.since, severity=severity)
                self.incidents[key] = incident
            incident.reason = t.output
            return self._notices(incident, "", now)
        if incident is None or t.status is Status.UNKNOWN:
            return []
        if t.status is Status.PASS:
            return [self._resolve(incident, now)]
        # Failing now (its own incident says so, louder), or on_warn was turned off.
        del self.incidents[key]
        return []

    def note_action(self, target: str, words: str) -> None:
        """Something recovery did ("restarted", "port 5050 freed"): told in the resolved notice."""
        incident = self.incidents.get(f"{target}:health")
        if incident is not None and words not in incident.actions:
            incident.actions.append(words)

    def observe_breaker(self, is_open: bool, reason: str) -> list[Alert]:
        """The breaker opened or closed."""
        now = self._clock.time()
        incident = self.incidents.get("breaker")
        if is_open and incident is None:
            incident = Incident(key="breaker", target=SELF, opened_at=now, reason=reason)
            self.incidents["breaker"] = incident
            return self._gate(self._notices(incident, "probes paused", now))
        if not is_open and incident is not None:
            return self._gate([self._resolve(incident, now)])
        return []

    def supervisor_restarted(self, how: str) -> list[Alert]:
        """We started after a run that did not stop cleanly (crash, watchdog, OOM)."""
        now = self._clock.time()
        alert = Alert(
            key="supervisor:restart",
            target=SELF,
            severity=Severity.WARNING,
            summary="supervisor restarted",
            reason=how,
            at=now,
            opened_at=now,
        )
        return self._gate([alert])

    def flush(self) -> list[Alert]:
        """Held alerts, as one digest, once the rate limit allows."""
        if not self._held or not self._room(self._clock.time()):
            return []
        held, self._held = self._held, []
        lines = tuple(f"{a.target}: {a.severity.value} {a.summary}" for a in held)
        now = self._clock.time()
        digest = Alert(
            key="digest",
            target=SELF,
            severity=Severity.INFO,
            summary=f"{len(held)} alerts held back by the rate limit",
            at=now,
            opened_at=held[0].at,
            actions=lines,
        )
        self._sent.append(now)
        return [digest]

    def silence(self, target: str, minutes: float) -> float:
        """Send nothing about `target` for a while; returns when the silence ends."""
        until = self._clock.time() + minutes * 60
        self.silences[target] = until
        return until

    def unsilence(self, target: str) -> bool:
        """End a silence; True if there was one."""
        return self.silences.pop(target, None) is not None

    def silenced(self, target: str) -> bool:
        """True while a silence on `target` lasts."""
        until = self.silences.get(target)
        if until is not None and until <= self._clock.time():
            del self.silences[target]
            return False
        return until is not None

    # -- decisions -------------------------------------------------------------------------

    def _rounds(self, t: TargetHealth, now: float) -> int:
        return failed_rounds(t, now, self._round_s.get(t.name, DEFAULT_ROUND_S))

    def _severity(self, t: TargetHealth, incident: Incident, gave_up: bool, now: float) -> Severity:
        if gave_up or (t.critical and now - incident.opened_at >= self._cfg.critical_after_s):
            return Severity.CRITICAL
        return Severity.WARNING

    def _notices(self, incident: Incident, recovery: str, now: float) -> list[Alert]:
        severity = Severity(incident.severity)
        first = incident.notified_at is None
        escalated = (
            not first and _RANK[severity] > _RANK[Severity(incident.notified_severity or "warning")]
        )
        due = not first and now - (incident.notified_at or now) >= self._cfg.cooldown_s
        if not (first or escalated or due):
            return []
        if self.silenced(incident.target):
            return []
        incident.notified_at, incident.notified_severity = now, severity.value
        what = _WHAT.get(incident.key.rpartition(":")[2], "open")
        return [
            Alert(
                key=incident.key,
                target=incident.target,
                severity=severity,
                summary=what if not escalated else f"{what}, escalated",
                at=now,
                reason=incident.reason,
                recovery=recovery,
                opened_at=incident.opened_at,
                reminder=due and not escalated,
                dependants=tuple(incident.dependants),
            )
        ]

    def _resolve(self, incident: Incident, now: float) -> Alert:
        del self.incidents[incident.key]
        if incident.notified_at is None or self.silenced(incident.target):
            return Alert(key="", target=incident.target, severity=Severity.RESOLVED, summary="")
        return Alert(
            key=incident.key,
            target=incident.target,
            severity=Severity.RESOLVED,
            summary=f"resolved after {duration(now - incident.opened_at)}",
            at=now,
            opened_at=incident.opened_at,
            actions=tuple(incident.actions),
            dependants=incident.dependants_words(),
        )

    def _gate(self, alerts: list[Alert]) -> list[Alert]:
        """Drop empties; send what the hourly limit allows, hold the rest for the digest.

        A critical alert is never held: the limit is there to spare a person noise, and
        "recovery gave up" is the one message that must arrive on time.
        """
        now = self._clock.time()
        out = []
        for alert in alerts:
            if not alert.key:
                continue
            if self._room(now) or alert.severity is Severity.CRITICAL:
                self._sent.append(now)
                out.append(alert)
            else:
                self._held.append(alert)
        return out

    def _room(self, now: float) -> bool:
        while self._sent and self._sent[0] <= now - _HOUR:
            self._sent.popleft()
        return len(self._sent) < self._cfg.max_per_hour

    # -- persistence -----------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-able data."""
        return {
            "incidents": [asdict(i) for i in self.incidents.values()],
            "silences": dict(self.silences),
            "sent": list(self._sent),
            "held": [alert_dict(a) for a in self._held],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Take back what `export()` gave (unknown or malformed entries are skipped)."""
        for raw in data.get("incidents", []):
            try:
                incident = Incident(**raw)
            except TypeError:
                continue
            self.incidents[incident.key] = incident
        self.silences.update({str(k): float(v) for k, v in data.get("silences", {}).items()})
        self._sent.extend(float(t) for t in data.get("sent", []))
        for raw in data.get("held", []):
            try:
                self._held.append(alert_from(raw))
            except (TypeError, ValueError, KeyError):
                continue
