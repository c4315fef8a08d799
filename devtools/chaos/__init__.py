"""The chaos run: hours of mixed faults against the real supervisor, checked afterwards.

``python -m devtools.chaos [--minutes 10] [--seed N] [--short]`` brings up its own sandbox
(`devtools.sandbox`: a private ``systemd --user`` with the demo fleet), starts the fake
Telegram Bot API and the real ``supervisor run`` process as systemd would (NOTIFY_SOCKET,
WATCHDOG_USEC, the unit's Nice= and restart delay), and injects the faults of a seeded plan,
one at a time and overlapping: kill -9, SIGSTOP, the demo programs' hang, stalled heartbeat,
memory growth and crash loop, an orphan on the dashboard's port, SIGKILL of the session bus,
``daemon-reexec``, SIGHUP reloads, SIGKILL of the supervisor (restarted by the run), bursts of
HTTP load, and Telegram down or answering 429.

Modules: `plan` (the kinds and the seeded plan, pure), `record` (the ground truth and what was
observed), `settings` (long and short runs, the supervisor's config), `daemon` (the
supervisor process), `telegram` (the fake Bot API on a thread), `observe` (the pollers),
`inject` (how each fault is made and undone), `judge` (when a fault counts as detected and
repaired, pure), `control` (the tick), `run` (the phases, and the cleanup), `alerts` and
`verdict` (the checks, pure; a package, one module per group of checks), `report` (the table).

Everything is checked from the supervisor's own outputs: /health (polled 10 times a second,
timed), /metrics (recovery counters), systemd's MainPID and NRestarts, the messages the fake
Bot API received, the supervisor's log and state file, and its footprint in /proc. See
docs/RELIABILITY.md, "Chaos run", for how to read the table.
"""
