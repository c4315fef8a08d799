#!/usr/bin/env bash
# The test command: sets up everything it needs on a fresh machine, then runs
# ruff, mypy and pytest. Extra arguments go to pytest (e.g. ./scripts/test.sh -k health).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Debian packages the integration tests use (a real systemd user manager and its bus; the
# Nagios plugins that exec probes run as they are; headless Chromium and its driver for the
# status page's browser test), the tools the benchmark (python -m devtools.bench) compares
# against and loads with (monit, wrk), and the fleet tools the contrib/ files are tested with
# (promtool and a real Prometheus server; amtool).
need=()
for pkg in systemd dbus-user-session dbus-daemon procps monitoring-plugins-basic monit wrk \
           prometheus prometheus-alertmanager chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
# Under CI (CI=true, set by .ci/run) a package that cannot be installed fails the run: the
# tests that need it would otherwise fail one by one (tests/ci_skips.py turns every skip into
# a failure there). Outside CI the tests that need it skip, saying why.
ci=0
case "${CI:-}" in 1|[Tt][Rr][Uu][Ee]|[Yy][Ee][Ss]) ci=1 ;; esac
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing Debian packages: ${need[*]}"
        # No service may start as a side effect of installing (monit's package would start
        # a system-wide monit, prometheus' a Prometheus and a node exporter): policy-rc.d
        # exit 101 tells invoke-rc.d to start nothing.
        made_policy=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            made_policy=1
        fi
        installed=1
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" ||
            installed=0
        if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
        if [ "$installed" = 0 ]; then
            if [ "$ci" = 1 ]; then
                echo "could not install all of: ${need[*]} (CI=true: failing the run)" >&2
                exit 1
            fi
            echo "could not install all of: ${need[*]} (tests that need them will skip)" >&2
        fi
    elif [ "$ci" = 1 ]; then
        echo "missing Debian packages: ${need[*]} (CI=true: failing the run; run as root)" >&2
        exit 1
    else
        echo "missing Debian packages (integration tests will skip): ${need[*]}" >&2
    fi
fi

bash scripts/bootstrap.sh dev
echo "== ruff"
.venv/bin/ruff check supervisor devtools tests scripts
.venv/bin/ruff format --check supervisor devtools tests scripts
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
