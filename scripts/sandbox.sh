#!/usr/bin/env bash
# The systemd user-manager sandbox with the demo fleet: up | down | status | env.
# eval "$(scripts/sandbox.sh env)" then points systemctl --user and D-Bus clients at it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$repo/.venv/bin/python" ]; then
    # Output to stderr: `env` prints lines for eval on stdout.
    bash "$repo/scripts/bootstrap.sh" >&2
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$repo/.venv/bin/python" -m devtools.sandbox "$@"
