#!/usr/bin/env bash
# Install sidecar-supervisor for the current user as a systemd user service.
#
#   ./install_services.sh              install, or upgrade in place (idempotent)
#   ./install_services.sh --dry-run    print what would be done, change nothing
#   ./install_services.sh --uninstall  stop and remove it (your config is kept)
#
# It puts a virtual environment under ${XDG_DATA_HOME:-~/.local/share}/sidecar-supervisor,
# the units into ${XDG_CONFIG_HOME:-~/.config}/systemd/user (the supervisor, and the oneshot
# that sends its last word when it fails for good), a default config (never overwriting
# yours), then enables and starts the service and waits for /health.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
config_home="${XDG_CONFIG_HOME:-$HOME/.config}"
prefix="$data_home/sidecar-supervisor"
venv="$prefix/venv"
config_dir="$config_home/sidecar-supervisor"
config="$config_dir/config.toml"
unit_dir="$config_home/systemd/user"
units=(sidecar-supervisor.service sidecar-supervisor-last-word.service)
python="${PYTHON:-python3}"
dry_run=0
action=install

for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        --uninstall) action=uninstall ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '%s\n' "$*"; }
run() {  # run a command, or only show it under --dry-run
    if [ "$dry_run" = 1 ]; then say "would run: $*"; else "$@"; fi
}

need_user_manager() {
    if ! systemctl --user show-environment >/dev/null 2>&1; then
        cat >&2 <<TXT
There is no systemd user manager for $(id -un) in this session, so a user service cannot
be installed. Log in through a normal login session (ssh or console, not 'su'), make sure
XDG_RUNTIME_DIR is set (usually /run/user/$(id -u)), and try again. To keep your services
running while you are logged out, enable lingering once:  sudo loginctl enable-linger $(id -un)
TXT
        exit 1
    fi
    if command -v loginctl >/dev/null 2>&1; then
        linger="$(loginctl show-user "$(id -un)" -p Linger --value 2>/dev/null || true)"
        if [ "$linger" = "no" ]; then
            say "note: lingering is off: your services stop when you log out."
            say "      to keep them running: sudo loginctl enable-linger $(id -un)"
        fi
    fi
}

source_stamp() {  # what is installed: a hash of the package's source and the lock
    (cd "$repo" && find pyproject.toml requirements.lock supervisor -type f \
        \( -name '*.py' -o -name '*.toml' -o -name '*.lock' \) \
        | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

install_venv() {
    local stamp="$venv/.sidecar-source"
    local want
    want="$(source_stamp)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "venv: $venv is up to date"
        return 1
    fi
    say "venv: installing sidecar-supervisor into $venv"
    [ -x "$venv/bin/python" ] || run "$python" -m venv "$venv" || exit 1
    # The dependencies at the exact versions of requirements.lock, each file checked against
    # its hashes (pip refuses anything unpinned, unhashed or different); then the package
    # itself from this checkout, adding no dependency of its own.
    local pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
    if [ "$dry_run" = 1 ]; then
        say "would run: pip install --require-hashes -r $repo/requirements.lock"
        say "would run: pip install --no-deps $repo"
        return 0
    fi
    if ! { "${pip[@]}" --require-hashes -r "$repo/requirements.lock" &&
           "${pip[@]}" --upgrade --no-deps "$repo"; } > "$prefix/pip.log" 2>&1; then
        tail -n 30 "$prefix/pip.log" >&2
        exit 1
    fi
    printf '%s\n' "$want" > "$stamp"
    return 0
}

install_config() {
    if [ -f "$config" ]; then
        say "config: keeping $config"
    else
        say "config: writing the default $config (edit it, then: systemctl --user reload sidecar-supervisor)"
        run mkdir -p "$config_dir"
        # The example's disk check on state_dir names the default; point it at the real one.
        local state_dir="${XDG_STATE_HOME:-$HOME/.local/state}/sidecar-supervisor"
        if [ "$dry_run" = 1 ]; then
            say "would write $config from units/config.example.toml (state_dir $state_dir)"
        else
            sed -e "s|\"~/.local/state/sidecar-supervisor\"|\"$state_dir\"|" \
                "$repo/units/config.example.toml" > "$config"
        fi
    fi
    if [ "$dry_run" = 0 ] && ! "$venv/bin/supervisor" check-config --config "$config" >/dev/null; then
        "$venv/bin/supervisor" check-config --config "$config" || true
        say "fix $config and run this again; the service was not (re)started." >&2
        exit 78
    fi
}

install_units() {  # each unit with its paths filled in; succeeds if one was (re)written
    local name path text changed=1
    for name in "${units[@]}"; do
        path="$unit_dir/$name"
        text="$(sed -e "s|@VENV@|$venv|g" -e "s|@CONFIG@|$config|g" "$repo/units/$name")"
        if [ -f "$path" ] && [ "$(cat "$path")" = "$text" ]; then
            say "unit: $path is up to date"
            continue
        fi
        say "unit: writing $path"
        run mkdir -p "$unit_dir"
        if [ "$dry_run" = 0 ]; then printf '%s\n' "$text" > "$path"; fi
        changed=0
    done
    return $changed
}

health_url() {
    "$venv/bin/python" - "$config" <<'PY'
import sys
from pathlib import Path
from supervisor import config
cfg = config.load(Path(sys.argv[1]))
print(f"http://{cfg.http.host}:{cfg.http.port}/health")
PY
}

wait_healthy() {
    local url deadline
    url="$(health_url)"
    deadline=$((SECONDS + 30))
    until systemctl --user is-active --quiet sidecar-supervisor.service; do
        if [ $SECONDS -ge $deadline ]; then
            systemctl --user status sidecar-supervisor.service --no-pager >&2 || true
            say "sidecar-supervisor did not become active within 30 s" >&2
            exit 1
        fi
        sleep 0.2
    done
    until "$venv/bin/supervisor" status --url "$url" >/dev/null 2>&1 || [ $? -lt 3 ]; do
        if [ $SECONDS -ge $deadline ]; then
            say "sidecar-supervisor is active but $url does not answer" >&2
            exit 1
        fi
        sleep 0.2
    done
    say "active, and $url answers:"
    "$venv/bin/supervisor" status --url "$url" || true
}

do_install() {
    need_user_manager
    run mkdir -p "$prefix"
    local changed=0
    install_venv && changed=1
    install_config
    install_units && changed=1
    run systemctl --user daemon-reload
    if systemctl --user is-active --quiet sidecar-supervisor.service; then
        if [ "$changed" = 1 ]; then
            say "service: restarting to pick up the upgrade"
            run systemctl --user restart sidecar-supervisor.service
        else
            say "service: already running, nothing changed"
        fi
    fi
    run systemctl --user enable --now sidecar-supervisor.service
    [ "$dry_run" = 1 ] && return
    wait_healthy
    cat <<TXT

Installed. Useful commands:
  systemctl --user status sidecar-supervisor           # state, STATUS= line, main PID
  journalctl --user -u sidecar-supervisor -f           # logs (-p warning: problems only)
  $venv/bin/supervisor status                          # the health table
  curl -s $(health_url)                                # application/health+json
  systemctl --user reload sidecar-supervisor           # after editing $config
Unit templates for the watched apps: $repo/units/{trader,dashboard,position-monitor}.service
TXT
}

do_uninstall() {
    need_user_manager
    if systemctl --user cat sidecar-supervisor.service >/dev/null 2>&1; then
        run systemctl --user disable --now sidecar-supervisor.service
    fi
    # A failed unit stays listed after its file is gone: forget both first.
    if [ "$dry_run" = 0 ]; then systemctl --user reset-failed "${units[@]}" >/dev/null 2>&1 || true; fi
    for name in "${units[@]}"; do
        if [ -f "$unit_dir/$name" ]; then run rm -f "$unit_dir/$name"; fi
    done
    run systemctl --user daemon-reload
    [ -d "$prefix" ] && run rm -rf "$prefix"
    say "uninstalled; your config is kept at $config"
}

if [ "$action" = uninstall ]; then do_uninstall; else do_install; fi
