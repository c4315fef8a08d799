"""check-config's plain warnings: what a valid config still leaves risky, and who set it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor import config, risks
from supervisor.errors import EXIT_CONFIG

TARGETS = '[[targets]]\nname = "trader"\nunit = "trader.service"\n'
TELEGRAM = '[alerts.telegram]\ntoken_file = "{token}"\nchat_ids = [1]\n'


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        return config.load(path)


def test_a_careful_config_has_nothing_to_say(tmp_path: Path) -> None:
    cfg = load(tmp_path, TARGETS + TELEGRAM.format(token=tmp_path / "t"))
    assert risks.warnings(cfg, {}, token_mode=0o100600) == []


def test_a_host_target_has_nothing_to_restart(tmp_path: Path) -> None:
    host = '[[targets]]\nname = "host"\n[[targets.probes]]\ntype = "disk"\npath = "/"\n'
    cfg = load(tmp_path, TARGETS + host + TELEGRAM.format(token="t"))
    assert cfg.targets[1].unit is None
    assert risks.warnings(cfg, {}) == []


def test_every_risk_is_named_with_its_path(tmp_path: Path) -> None:
    text = (
        'dry_run = true\n[http]\nhost = "0.0.0.0"\n'
        + TARGETS
        + "[targets.recovery]\nenabled = false\n"
        + TELEGRAM.format(token=tmp_path / "t")
    )
    found = risks.warnings(load(tmp_path, text), {}, token_mode=0o100644)
    assert found == [
        "dry_run: true: recovery is decided and logged, never carried out",
        "targets[0](trader).recovery.enabled: false: trader is never restarted",
        f"http.host: '0.0.0.0' {risks.BEYOND_LOOPBACK}",
        f"alerts.telegram.token_file: {tmp_path / 't'} is readable by group or others "
        "(mode 0644): chmod 600 it",
    ]


def test_alerts_off_or_nowhere_to_go(tmp_path: Path) -> None:
    off = load(tmp_path, "[alerts]\nenabled = false\n" + TARGETS)
    assert risks.warnings(off, {}) == [
        "alerts.enabled: false: no alert is sent, failures are only logged"
    ]
    assert risks.warnings(load(tmp_path, TARGETS), {}) == [
        "alerts.telegram: not set: alerts are only logged, nobody is told"
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_is_quiet(tmp_path: Path, host: str) -> None:
    cfg = load(tmp_path, f'[http]\nhost = "{host}"\n' + TARGETS + TELEGRAM.format(token="t"))
    assert risks.warnings(cfg, {}) == []


def test_environment_overrides_are_named(tmp_path: Path) -> None:
    env = {
        "SUPERVISOR_DRY_RUN": "true",
        "SUPERVISOR_ALERTS__ENABLED": "false",
        "SUPERVISOR_TARGETS": '[{"name": "t", "unit": "t.service", "recovery": {"enabled": 0}}]',
    }
    found = risks.warnings(load(tmp_path, TARGETS, env), env)
    assert found == [
        "dry_run: true: recovery is decided and logged, never carried out "
        "(set by SUPERVISOR_DRY_RUN in the environment)",
        "targets[0](t).recovery.enabled: false: t is never restarted "
        "(set by SUPERVISOR_TARGETS in the environment)",
        "alerts.enabled: false: no alert is sent, failures are only logged "
        "(set by SUPERVISOR_ALERTS__ENABLED in the environment)",
    ]


def check_config(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SUPERVISOR_")}
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, **env},
    )


def test_check_config_warns_and_still_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(TARGETS)
    result = check_config(path, SUPERVISOR_DRY_RUN="true")
    assert result.returncode == 0, result.stderr
    assert "environment overrides: SUPERVISOR_DRY_RUN" in result.stdout
    assert (
        "warning: dry_run: true: recovery is decided and logged, never carried out "
        "(set by SUPERVISOR_DRY_RUN in the environment)"
    ) in result.stderr.splitlines()


def test_a_short_api_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[http]\napi_key = "short-key-15chr"\n' + TARGETS)
    result = check_config(path)
    assert result.returncode == EXIT_CONFIG
    assert "http.api_key: too short: use at least 16 random characters" in result.stderr
    assert "short-key" not in result.stderr
    path.write_text('[http]\napi_key = "long-enough-key-16"\n' + TARGETS)
    assert check_config(path).returncode == 0
