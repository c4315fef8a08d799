"""The result as Markdown tables, and each target (measured against goal, pass or miss).

Pure: a results dict in, text out (`--json` prints the dict itself).
"""

from __future__ import annotations

from typing import Any

from devtools.bench.hang import hang_targets, md_hang
from devtools.bench.settings import SCENARIOS
from devtools.bench.stats import fmt_s


def fmt_outcome(o: dict[str, Any] | None) -> str:
    """One tool's recovery in one scenario: median (min-max, n), or why not."""
    if o is None:
        return "not run"
    if not o.get("recovered"):
        return f"not recovered within {o['waited_s']:g} s"
    text = f"{fmt_s(o['median'])} ({o['min']:.2f}-{o['max']:.2f}, n={o['n']})"
    if o.get("not_recovered"):
        text += f"; {o['not_recovered']} not recovered"
    return text


def ratio(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    """Our median over theirs, when both recovered."""
    if not ours or not theirs or not ours.get("recovered"):
        return "n/a"
    if not theirs.get("recovered"):
        return "n/a (they did not recover)"
    return f"{ours['median'] / theirs['median']:.2f}x"


def evaluate(r: dict[str, Any]) -> list[dict[str, str]]:
    """Measured against goal, pass or miss, for every target the run has figures for."""
    rows: list[dict[str, str]] = []

    def add(name: str, measured: str, goal: str, ok: bool) -> None:
        rows.append(
            {"target": name, "measured": measured, "goal": goal, "result": "pass" if ok else "miss"}
        )

    det = r.get("detection")
    if det:
        for key, words in (("snapshot_ms", "snapshot `since`"), ("health_ms", "first GET /health")):
            p99 = det[key]["p99"]
            add(f"detection p99 (kill -9 -> {words})", f"{p99:.1f} ms", "< 100 ms", p99 < 100)
    rec = r.get("recovery", {})
    dead = rec.get("dead", {}).get("supervisor")
    if dead and dead.get("recovered"):
        m = dead["median"]
        add("dead unit (Restart=no) serving again, median", fmt_s(m), "< 1.5 s", m < 1.5)
    hung = rec.get("hung", {}).get("supervisor")
    if hung and hung.get("recovered"):
        m = hung["median"]
        add("hung process recovered (defaults), median", fmt_s(m), "< 12 s", m < 12)
        monit = rec.get("hung", {}).get("monit")
        if monit and monit.get("recovered"):
            x = m / monit["median"]
            add("hung: supervisor / Monit (3 failures each)", f"{x:.2f}x", "≤ 0.75x", x <= 0.75)
    idle = r.get("idle")
    if idle:
        cpu3 = idle["idle_3_targets"]["cpu_percent"]["median"]
        rss3 = idle["idle_3_targets"]["rss_mb"]["median"]
        cpu100 = idle["idle_100_targets"]["cpu_percent"]["median"]
        add(
            "idle CPU, 3 targets, with history (% of one core)",
            f"{cpu3:.3f} %",
            "< 0.2 %",
            cpu3 < 0.2,
        )
        add("RSS, 3 targets, with history, no Telegram", f"{rss3:.1f} MB", "< 45 MB", rss3 < 45)
        prod = idle.get("production")
        if prod:
            rss_p = prod["rss_mb"]["median"]
            add(
                "RSS, production config (Telegram, history, API key, 3 targets)",
                f"{rss_p:.1f} MB",
                "< 55 MB",
                rss_p < 55,
            )
        add("idle CPU, 100 targets", f"{cpu100:.3f} %", "< 0.5 %", cpu100 < 0.5)
    load = r.get("load")
    if load:
        ten = next(level for level in load["levels"] if level["connections"] == 10)
        # Served or throttled, never an error: over its CPU budget the supervisor answers 429,
        # so how many it serves per second is its budget's choice, not a goal.
        ok = ten["p99_ms"] < 10 and not ten["other"] and not ten["socket_errors"]
        add(
            "GET /health at 10 connections",
            f"{ten['rps']:,.0f} served/s, {ten['throttled']:,} throttled, "
            f"{ten['other']} other, p99 {ten['p99_ms']:.2f} ms",
            "every answer served or 429, p99 < 10 ms",
            ok,
        )
        gap, limit = load["watchdog_max_gap_s"], load["watchdog_limit_s"]
        add("watchdog: longest ping gap under load", f"{gap:.2f} s", f"≤ {limit:g} s", gap <= limit)
        runs = load["probe_runs"]
        add(
            "probes on schedule under load",
            f"{min(runs.values()):.0f}-{max(runs.values()):.0f} runs per probe",
            f"≥ {int(load['probe_runs_expected_each'])} each",
            load["probes_on_schedule"],
        )
    rows += history_targets(r.get("history"))
    rows += hang_targets(r.get("hang"))
    start = r.get("startup_ready_s")
    if start:
        add(
            "startup to READY=1 (slowest of all starts)",
            f"{start['max']:.2f} s (median {start['median']:.2f})",
            "< 1 s",
            start["max"] < 1,
        )
    return rows


def history_targets(h: dict[str, Any] | None) -> list[dict[str, str]]:
    """The history's budgets: RSS growth, `/` and /events p99, watchdog pings under bursts."""
    if not h:
        return []

    def judged(name: str, measured: str, goal: str, ok: bool) -> dict[str, str]:
        return {
            "target": name,
            "measured": measured,
            "goal": goal,
            "result": "pass" if ok else "miss",
        }

    growth = h["rss"]["growth_mb"]["median"]
    rows = [
        judged("RSS growth with the history on, median", f"{growth:+.1f} MB", "≤ 3 MB", growth <= 3)
    ]
    events = h["latency"]["events"]
    for level in h["latency"]["levels"]:
        p99 = level["p99_ms"]
        ok = p99 < 20 and not level["other"] and not level["socket_errors"]
        rows.append(
            judged(
                f"GET {level['path']} at {level['connections']} clients, {events:,} events stored",
                f"p99 {p99:.2f} ms, {level['rps']:,.0f} served/s, {level['throttled']:,} throttled"
                + (", with errors" if level["other"] else ""),
                "p99 < 20 ms",
                ok,
            )
        )
    b = h["burst"]
    gap = b["max_gap_s"]["max"]
    rows.append(
        judged(
            f"watchdog: longest ping gap around a burst of {b['events']:,} events",
            f"{gap:.3f} s ({b['late']} of {b['max_gap_s']['n']} bursts late)",
            f"≤ {b['limit_s']:g} s (pings due every {b['ping_interval_s']:g} s)",
            not b["late"],
        )
    )
    return rows


def markdown(r: dict[str, Any]) -> str:
    """The whole result: a header naming machine, versions and run, then the tables."""
    m = r["machine"]
    out = [
        f"sidecar-supervisor {m['supervisor']} ({m['commit']}, source {m['source']}) on "
        f"{m['cores']} cores "
        f"({m['cpu']}), kernel {m['kernel']}; {m['python']}, {m['systemd']}, "
        f"{m['monit']}, {m['wrk']}; load average {m['loadavg_start']} at start, "
        f"{m['loadavg_end']} at end; {'--quick' if r['settings']['quick'] else 'full'} run "
        f"in {r['runtime_s']:.0f} s, seed {r['settings']['seed']}",
        "",
    ]
    if m["source"] != m["source_end"]:
        out[0:0] = [
            f"**WARNING: supervisor/ changed during the run (source {m['source']} at the "
            f"start, {m['source_end']} at the end): figures may mix two versions.**",
            "",
        ]
    failed = r.get("failed")
    if failed:
        out += [
            f"**Section `{failed['section']}` failed ({failed['error']}); the figures below are "
            "those of the sections that finished.**",
            "",
        ]
    for part in (md_overhead, md_detection, md_recovery, md_load, md_history, md_hang, md_targets):
        out += part(r)
    return "\n".join(out)


def md_overhead(r: dict[str, Any]) -> list[str]:
    if "startup_ready_s" not in r and "idle" not in r:
        return []
    out = ["| measure | median | min | max | n |", "|---|---|---|---|---|"]
    if "startup_ready_s" in r:
        out.append(row("startup to READY=1", r["startup_ready_s"], "s"))
    if "idle" in r:
        i3, i100 = r["idle"]["idle_3_targets"], r["idle"]["idle_100_targets"]
        w = f"{r['settings']['idle_window_s']:g} s windows"
        out.append(row(f"idle CPU, 3 targets, with history ({w})", i3["cpu_percent"], "%"))
        out.append(row("RSS, 3 targets, with history", i3["rss_mb"], "MB"))
        out.append(row(f"idle CPU, 100 targets ({w})", i100["cpu_percent"], "%"))
        out.append(row("RSS, 100 targets", i100["rss_mb"], "MB"))
        prod = r["idle"].get("production")
        if prod:
            words = "production config (Telegram, history, API key, 3 targets)"
            out.append(row(f"idle CPU, {words} ({w})", prod["cpu_percent"], "%"))
            out.append(row(f"RSS, {words}", prod["rss_mb"], "MB"))
        imports = r["idle"].get("import_rss_mb")
        if imports:
            steps = imports["steps"]
            parts = [f"{steps[0]['rss_mb']:.1f} bare"]
            parts += [f"{x['module']} +{x['added_mb']:.1f}" for x in steps[1:]]
            by = imports.get("telegram_by")
            loaded = f"loaded by {by} only" if by else "not loaded"
            without = ", ".join(
                f"without {k} {v:.1f} MB" for k, v in imports["dependencies_without_mb"].items()
            )
            out += [
                "",
                "RSS of a fresh interpreter importing what `supervisor run` imports, in turn "
                f"(MB): {', '.join(parts)} = {steps[-1]['rss_mb']:.1f} MB "
                f"(python-telegram-bot {loaded}). The dependencies alone: "
                f"{imports['dependencies_mb']:.1f} MB; {without}.",
            ]
    return [*out, ""]


def md_detection(r: dict[str, Any]) -> list[str]:
    det = r.get("detection")
    if not det:
        return []
    out = [
        "Detection latency, kill -9 of trader's main process (Restart=no, recovery off):",
        "",
        "| from kill -9 to | p50 | p99 | max | n |",
        "|---|---|---|---|---|",
    ]
    for key, words in (
        ("snapshot_ms", "the supervisor's snapshot (`since` in /health)"),
        ("health_ms", "the first GET /health that says fail"),
    ):
        out.append(_ms_row(words, det[key]))
    if "cause_wait_ms" not in det:  # a result file from before the figure was measured
        return [*out, ""]
    return [
        *out,
        "",
        "Saying why, the same kills (alerts at the first failed round, while the cause is read):",
        "",
        "| figure | p50 | p99 | max | n |",
        "|---|---|---|---|---|",
        _ms_row("the alert's wait for cause and last lines (`causeWaitS`, max 0.5 s)",
                det["cause_wait_ms"]),
        _ms_row("the fail (`since`) -> the alert queued with them", det["alert_ms"]),
        "",
    ]  # fmt: skip


def _ms_row(words: str, d: dict[str, Any]) -> str:
    return f"| {words} | {d['p50']:.1f} ms | {d['p99']:.1f} ms | {d['max']:.1f} ms | {d['n']} |"


def md_recovery(r: dict[str, Any]) -> list[str]:
    rec = r.get("recovery")
    if not rec or not any(rec.values()):
        return []
    out = [
        "Recovery time, from the fault to the unit serving again from a new process "
        "(median (min-max, n)):",
        "",
        "| fault | supervisor | Monit | systemd alone | supervisor / Monit "
        "| supervisor / systemd |",
        "|---|---|---|---|---|---|",
    ]
    names = {
        "dead": "dead process (kill -9 dashboard)",
        "hung": "hung process (SIGSTOP dashboard)",
        "stale": "stale heartbeat (trader stall-heartbeat)",
        "orphan": "orphan holding the dashboard's port",
    }
    for scenario in SCENARIOS:
        by = rec.get(scenario, {})
        ours, monit, sysd = by.get("supervisor"), by.get("monit"), by.get("systemd")
        out.append(
            f"| {names[scenario]} | {fmt_outcome(ours)} | {fmt_outcome(monit)} "
            f"| {fmt_outcome(sysd)} | {ratio(ours, monit)} | {ratio(ours, sysd)} |"
        )
    notes = [
        f"- {tool} / {scenario}: {why}"
        for scenario in SCENARIOS
        for tool, o in rec.get(scenario, {}).items()
        for why in (o or {}).get("why", [])
    ]
    if notes:
        out += ["", "Not recovered:", *notes]
    return [*out, ""]


def md_load(r: dict[str, Any]) -> list[str]:
    load = r.get("load")
    if not load:
        return []
    out = [
        f"GET /health under load (wrk, {r['settings']['wrk_s']} s per level; watchdog "
        f"WATCHDOG_USEC={load['watchdog_usec']}, pings due every "
        f"{load['watchdog_usec'] / 2e6:g} s); served is 200 or 503 with a body, 429s are "
        "counted apart, latencies are of every answer:",
        "",
        "| connections | served/s | served | throttled (429) | other | p50 | p90 | p99 "
        "| socket errors | longest watchdog gap | probe runs (expected) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in load["levels"]:
        out.append(
            f"| {lv['connections']} (-t{lv['threads']}) | {lv['rps']:,.0f} | {lv['served']:,} "
            f"| {lv['throttled']:,} | {lv['other']:,} "
            f"| {lv['p50_ms']:.2f} ms | {lv['p90_ms']:.2f} ms | {lv['p99_ms']:.2f} ms "
            f"| {lv['socket_errors']} | {lv['watchdog_max_gap_s']:.2f} s "
            f"| {lv['probe_runs']:.0f} ({lv['probe_runs_expected']:g}) |"
        )
    runs = ", ".join(f"{k}: {v:.0f}" for k, v in load["probe_runs"].items())
    expected = load["probe_runs_expected_each"]
    return [
        *out,
        "",
        f"Probe runs over the whole load phase: {runs} (expected about {expected:g} each).",
        "",
    ]


def md_history(r: dict[str, Any]) -> list[str]:
    h = r.get("history")
    if not h:
        return []
    rss, lat, b = h["rss"], h["latency"], h["burst"]
    out = [
        "History: RSS with it on and off (supervisors started in pairs, side by side):",
        "",
        "| measure | median | min | max | n |",
        "|---|---|---|---|---|",
        row("RSS, history on", rss["on_mb"], "MB"),
        row("RSS, history off", rss["off_mb"], "MB"),
        row("growth (on - off, per pair)", rss["growth_mb"], "MB"),
        "",
        f"History: wrk at 10 clients ({r['settings']['wrk_s']} s each) with "
        f"{lat['events']:,} events stored ({lat['file_mb']:g} MB of SQLite):",
        "",
        "| path | served/s | throttled (429) | other | p50 | p90 | p99 | socket errors "
        "| longest watchdog gap |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lv in lat["levels"]:
        out.append(
            f"| {lv['path']} | {lv['rps']:,.0f} | {lv['throttled']:,} | {lv['other']:,} "
            f"| {lv['p50_ms']:.2f} ms | {lv['p90_ms']:.2f} ms "
            f"| {lv['p99_ms']:.2f} ms | {lv['socket_errors']} "
            f"| {lv['watchdog_max_gap_s']:.2f} s |"
        )
    out += [
        "",
        f"History: bursts of {b['events']:,} events recorded at once, each started just before "
        f"a watchdog ping was due (WATCHDOG_USEC={b['watchdog_usec']}, pings every "
        f"{b['ping_interval_s']:g} s):",
        "",
        "| measure | median | min | max | n |",
        "|---|---|---|---|---|",
        row("event loop held by the burst", b["loop_held_ms"], "ms"),
        row("longest ping gap around the burst", b["max_gap_s"], "s"),
    ]
    return [*out, ""]


def md_targets(r: dict[str, Any]) -> list[str]:
    targets = r.get("targets", [])
    if not targets:
        return []
    out = ["Targets:", "", "| target | measured | goal | result |", "|---|---|---|---|"]
    for x in targets:
        result = x["result"] if x["result"] == "pass" else f"**{x['result']}**"
        out.append(f"| {x['target']} | {x['measured']} | {x['goal']} | {result} |")
    return out


def row(name: str, s: dict[str, Any], unit: str) -> str:
    """A table row of a `stats.summary`."""
    return f"| {name} | {s['median']:.3f} {unit} | {s['min']:.3f} | {s['max']:.3f} | {s['n']} |"
