#!/usr/bin/env bash
# The demo: a real systemd user manager running a small trading fleet, watched by the
# supervisor. Usage: ./scripts/demo.sh [--for SECONDS]   (default: until Ctrl-C)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

duration=""
case "${1:-}" in
    --for) duration="${2:?--for needs a number of seconds}" ;;
    "") ;;
    *) echo "usage: $0 [--for SECONDS]" >&2; exit 2 ;;
esac

bash scripts/bootstrap.sh
py="$repo/.venv/bin/python"
root="$repo/.sandbox"
http_port="${SUPERVISOR_DEMO_PORT:-5051}"
supervisor_pid=""

cleanup() {
    trap - EXIT INT TERM
    echo
    echo "== tearing down"
    if [ -n "$supervisor_pid" ] && kill -0 "$supervisor_pid" 2>/dev/null; then
        kill -TERM "$supervisor_pid"
        wait "$supervisor_pid" 2>/dev/null || true
    fi
    "$py" -m devtools.sandbox down --root "$root" || true
}
trap cleanup EXIT INT TERM

echo "== starting a systemd user manager and the demo fleet under $root"
"$py" -m devtools.sandbox up --root "$root" --dashboard-port 5050
eval "$("$py" -m devtools.sandbox env --root "$root")"

config="$root/config.toml"
state="$root/state"
mkdir -p "$state"
# The exec probe runs Debian's check_tcp as it is; without monitoring-plugins-basic, a tiny
# script in the repository that follows the same plugin API stands in for it.
check_tcp=/usr/lib/nagios/plugins/check_tcp
[ -x "$check_tcp" ] || check_tcp="$repo/devtools/demo/check_tcp.sh"
cat > "$config" <<TOML
# Written by scripts/demo.sh: the example config, with the sandbox's paths.
state_dir = "$state"   # the history (history.sqlite3) and the state file live here

[http]
port = $http_port

[[targets]]
name = "trader"
unit = "trader.service"
critical = true
  [[targets.probes]]
  type = "heartbeat"
  path = "$root/home/trading/trader.heartbeat"
  max_age_s = 5
  [[targets.probes]]
  type = "resources"
  memory_max_mb = 200

[[targets]]
name = "dashboard"
unit = "dashboard.service"
ports = [5050]
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:5050/health"
  expect_json = { status = "ok" }
  [[targets.probes]]
  type = "http"               # the market feed: connected AND recently heard from
  name = "feed"
  url = "http://127.0.0.1:5050/feed"
  json = [
    { path = "feed.connected", equals = true },
    { path = "feed.last_message_at", max_age_s = 10 },
    { path = "balance", min = 100, warn_below = 500 },
  ]
  [[targets.probes]]
  type = "exec"               # a Nagios plugin: exit 0 pass, 1 warn, 2 fail, 3 unknown
  name = "port"
  command = ["$check_tcp", "-H", "127.0.0.1", "-p", "5050"]
  [targets.recovery]
  actions = ["restart", "free-port"]

[[targets]]
name = "position-monitor"
unit = "position-monitor.service"
  [[targets.probes]]
  type = "heartbeat"
  path = "$root/home/trading/position-monitor.heartbeat"
  max_age_s = 5

[[targets]]
name = "host"                 # the box itself: no unit, nothing to restart
  [[targets.probes]]
  type = "disk"
  name = "home"
  path = "$root/home"
  warn_percent = 80           # used space and inodes, in percent
  fail_percent = 90
  [[targets.probes]]
  type = "disk"
  name = "state"
  path = "$state"
  [[targets.probes]]
  type = "memory"
  [[targets.probes]]
  type = "load"
TOML

echo "== starting the supervisor (log: $root/supervisor.log)"
"$py" -m supervisor run --config "$config" > "$root/supervisor.log" 2>&1 &
supervisor_pid=$!

# Wait (with a deadline) until every target is known and none fails, then show the picture.
if ! "$py" - "$http_port" <<'PY'
import json, sys, time, urllib.request, urllib.error
url = f"http://127.0.0.1:{sys.argv[1]}/health"
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            doc = json.load(resp)
        # Ready: every target read at least once, and none failing (a full disk may warn).
        entries = [e[0] for e in doc["checks"].values()]
        if all(e["status"] != "fail" and e.get("state") != "unknown" for e in entries):
            sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.2)
sys.exit(1)
PY
then
    echo "the supervisor did not report every target healthy within 30 s; its log:" >&2
    tail -n 30 "$root/supervisor.log" >&2
    exit 1
fi

echo
"$py" -m supervisor status --url "http://127.0.0.1:$http_port/health" || true
cat <<TXT

The status page: http://127.0.0.1:$http_port/   (live; open it and break something below)
/health:  http://127.0.0.1:$http_port/health    /metrics: http://127.0.0.1:$http_port/metrics
/events:  http://127.0.0.1:$http_port/events    /history: http://127.0.0.1:$http_port/history/trader
Things to try in another shell (first: eval "\$(scripts/sandbox.sh env)"):
  kill -9 \$(systemctl --user show -p MainPID --value trader.service)    # dead: restarted at once
  kill -STOP \$(systemctl --user show -p MainPID --value dashboard.service) # stopped: stuck at once
  .venv/bin/python -m devtools.demo fault dashboard deadlock --root $root     # stuck at 1st timeout
  .venv/bin/python -m devtools.demo fault dashboard slow --root $root         # slow: never failed
  .venv/bin/python -m devtools.demo fault trader stall-heartbeat --root $root  # stale heartbeat
  .venv/bin/python -m devtools.demo fault trader grow-memory --root $root      # +64 MiB each
  .venv/bin/python -m devtools.demo fault dashboard stall-feed --root $root   # silent feed
  curl -s http://127.0.0.1:5050/feed                                          # what it says
  .venv/bin/supervisor status --url http://127.0.0.1:$http_port/health
  .venv/bin/supervisor events --url http://127.0.0.1:$http_port --follow       # the timeline, live
  tail -f $root/supervisor.log
TXT

if [ -n "$duration" ]; then
    echo "(stopping in $duration s)"
    sleep "$duration"
else
    echo "(Ctrl-C to stop)"
    wait "$supervisor_pid"
fi
