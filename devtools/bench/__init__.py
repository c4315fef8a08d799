"""Benchmarks of the real supervisor process against the sandbox's demo fleet, side by side
with Monit and with systemd alone.

Brings up its own sandbox (a private systemd --user running trader, dashboard and
position-monitor; see devtools.sandbox) and measures on this machine:

- startup: process start -> READY=1 on a real NOTIFY_SOCKET;
- idle overhead: the supervisor's CPU (% of one core, /proc utime+stime) and RSS with the
  three demo targets and with 100 targets (97 more units running `sleep`), history on;
- detection latency: kill -9 of trader's main process (Restart=no, recovery off) -> the
  `since` of the trader's fail status in /health, and -> the first GET /health saying fail;
- recovery time per fault (dead, hung, stale heartbeat, orphan holding the port), from the
  fault to the unit serving again from a new process, for the supervisor, for Monit (same
  period, timeout and failure count) and for systemd alone (Restart=on-failure);
- GET /health under load (wrk at 1, 10 and 100 connections) with the watchdog on: requests/s,
  latency, the longest gap between WATCHDOG=1 pings, and whether probes kept their schedule;
- the history's costs: RSS with it on vs off (pairs side by side), `/` and /events at 10
  clients (wrk) with 100,000 events stored, and the longest watchdog ping gap around bursts
  of 1,000 events recorded at once.

Prints Markdown tables (JSON with --json); progress goes to stderr. docs/BENCHMARKS.md says
what each figure means and how it is measured. Run from the checkout's root after
./scripts/test.sh set up .venv:

    .venv/bin/python -m devtools.bench            # full run, about 11 minutes
    .venv/bin/python -m devtools.bench --quick    # smoke run, under 3 minutes

The modules: `settings` (what a run does, deadlines), `processes` (children, /proc readings),
`watchers` (a `supervisor run` process, its config and NOTIFY_SOCKET) and `monit`, `faults`
(inject, "serving again", repair), one module per group of sections (`overhead`: startup and
idle; `detection`; `recovery`: the supervisor, Monit, systemd alone; `load`; `history`),
`stats` and `report` (pure figures and tables), `machine` (what it ran on) and `__main__`
(the command line).
"""
