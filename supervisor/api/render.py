"""Pure renderers of a snapshot: the health+json document, the STATUS= line, the CLI table."""

from __future__ import annotations

from typing import Any

from supervisor import __version__
from supervisor.model import Hold, Snapshot, Status, TargetHealth
from supervisor.times import iso

HEALTH_CONTENT_TYPE = "application/health+json"


def _public(status: Status) -> str:
    # The draft knows only pass/warn/fail: "unknown" is a warning whose output says why.
    return Status.WARN.value if status is Status.UNKNOWN else status.value


def http_code(status: Status) -> int:
    """pass and warn answer 200; fail answers 503 so load balancers and curl -f notice."""
    return 503 if status is Status.FAIL else 200


def target_check(t: TargetHealth, now: float) -> dict[str, Any]:
    """One target as an entry of the draft's `checks` map."""
    unit = t.unit_state
    entry: dict[str, Any] = {
        "componentId": t.name,
        "componentType": "systemd-unit" if t.unit else "host",
        "status": _public(t.status),
        "time": iso(now),
        "output": t.output,
        "unit": t.unit,
        "critical": t.critical,
        "since": iso(t.since),
        "consecutiveFailures": t.consecutive_failures,
        "lastSuccess": iso(t.last_success),
        "recovery": t.recovery,
        # The root cause it waits for while a target it needs is down (its own status stays).
        "blocked_by": t.blocked_by,
    }
    if t.dependants:
        entry["dependants"] = list(t.dependants)
    if t.status is Status.UNKNOWN:
        entry["state"] = "unknown"
    entry.update(_people(t))
    if unit is not None:
        entry.update(
            activeState=unit.active_state.value,
            subState=unit.sub_state,
            result=unit.result,
            nRestarts=unit.n_restarts,
            mainPid=unit.main_pid,
        )
    if t.probes:
        entry["probes"] = [_probe(p) for p in t.probes]
    return entry


def hold_document(hold: Hold) -> dict[str, Any]:
    """A hold as JSON: until, reason, who set it, since."""
    return {
        "until": iso(hold.until),
        "reason": hold.reason,
        "by": hold.by,
        "since": iso(hold.since),
    }


def _people(t: TargetHealth) -> dict[str, Any]:
    """What the people who run the box did or see: a hold, a stop, a start, flapping."""
    out: dict[str, Any] = {}
    if t.hold is not None:
        out["hold"] = hold_document(t.hold)
    if t.stopped_at is not None:
        out["stoppedOnRequest"] = iso(t.stopped_at)
    if t.starting is not None:
        out["starting"] = {"elapsedSeconds": round(t.starting[0], 1), "graceSeconds": t.starting[1]}
    if t.flapping is not None:
        f = t.flapping
        out["flapping"] = {
            "failures": f.count,
            "withinSeconds": round(f.span_s),
            "since": iso(f.since),
        }
    return out


def _probe(p: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "probe": p.probe,
        "type": p.kind,
        "status": _public(p.status),
        "output": p.output,
        "consecutiveFailures": p.consecutive_failures,
    }
    if p.status is Status.UNKNOWN:
        out["state"] = "unknown"
    if p.observed_value is not None:
        out["observedValue"] = p.observed_value
        out["observedUnit"] = p.observed_unit
    if p.source is not None:
        out["source"] = p.source
    if p.perfdata:
        out["perfdata"] = [{"label": d.label, "value": d.value, "unit": d.unit} for d in p.perfdata]
    return out


def health_document(snap: Snapshot) -> dict[str, Any]:
    """The whole fleet as `application/health+json`."""
    doc: dict[str, Any] = {
        "status": _public(snap.status),
        "version": __version__,
        "serviceId": "sidecar-supervisor",
        "description": "health of the watched systemd user units",
        "checks": {t.name: [target_check(t, snap.time)] for t in snap.targets},
    }
    if snap.notes:
        doc["notes"] = list(snap.notes)
        doc["output"] = "; ".join(snap.notes)
    return doc


def target_document(snap: Snapshot, t: TargetHealth) -> dict[str, Any]:
    """One target as its own health document."""
    return {
        "status": _public(t.status),
        "version": __version__,
        "serviceId": f"sidecar-supervisor/{t.name}",
        "output": t.output,
        "checks": {t.name: [target_check(t, snap.time)]},
    }


def status_line(snap: Snapshot) -> str:
    """One line for systemd's STATUS=: "3 targets: 2 pass, 1 fail (dashboard)"."""
    counts: dict[str, list[str]] = {}
    for t in snap.targets:
        counts.setdefault(t.status.value, []).append(t.name)
    parts = []
    for status in (Status.PASS, Status.WARN, Status.UNKNOWN, Status.FAIL):
        names = counts.get(status.value, [])
        if names:
            shown = "" if status is Status.PASS else f" ({', '.join(names)})"
            parts.append(f"{len(names)} {status.value}{shown}")
    line = f"{len(snap.targets)} targets: " + ", ".join(parts)
    return "; ".join([line, *snap.notes])


def table(doc: dict[str, Any]) -> str:
    """A health document as a readable table (for `supervisor status`)."""
    rows = [("TARGET", "STATUS", "UNIT", "STATE", "PID", "RESTARTS", "RECOVERY", "OUTPUT")]
    for name, entries in doc.get("checks", {}).items():
        e = entries[0]
        state = f"{e.get('activeState', '?')}/{e.get('subState', '?')}" if e.get("unit") else "-"
        rows.append(
            (
                name,
                e.get("state", e["status"]),
                e.get("unit") or "(host)",
                state,
                str(e.get("mainPid", "")),
                str(e.get("nRestarts", "")),
                e.get("recovery", ""),
                e.get("output", ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]
    header = f"overall: {doc.get('status', '?')}"
    if doc.get("output"):
        header += f" ({doc['output']})"
    return "\n".join([header, *lines])


_PRIVATE = ("chat", "sender", "user")  # chat event data kept out of the API


def public_event(doc: dict[str, Any]) -> dict[str, Any]:
    """An event document as any local reader may see it (/events, the stream): a chat
    command without who sent it or from which chat. The log keeps those for the operator."""
    if doc.get("kind") != "chat":
        return doc
    data = {k: v for k, v in doc.get("data", {}).items() if k not in _PRIVATE}
    command = data.get("command")
    summary = f"/{command} from an allowed Telegram user" if command else "a chat command"
    return {**doc, "summary": summary, "data": data}
