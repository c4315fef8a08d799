#!/usr/bin/env bash
# Create .venv (if needed) and install the project into it, with the given extras.
# Sourced by demo.sh and test.sh so both work on a fresh machine with nothing installed.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
venv="$repo/.venv"
stamp="$venv/.installed-${extras:-base}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# Reinstall only when pyproject.toml changed since the last install with these extras.
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
    spec="$repo"
    [ -n "$extras" ] && spec="$repo[$extras]"
    echo "installing sidecar-supervisor${extras:+[$extras]} into $venv" >&2
    # pip's chatter goes to a log, shown only if the install fails.
    if ! { "$venv/bin/python" -m pip install --upgrade pip &&
           "$venv/bin/python" -m pip install -e "$spec"; } > "$venv/install.log" 2>&1; then
        tail -n 40 "$venv/install.log" >&2
        exit 1
    fi
    touch "$stamp"
fi
