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
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    spec="$repo"
    [ -n "$extras" ] && spec="$repo[$extras]"
    "$venv/bin/python" -m pip install --quiet -e "$spec"
    touch "$stamp"
fi
