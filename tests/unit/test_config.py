"""Configuration: valid files, every kind of error, env overrides, and check-config's exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from supervisor import config
from supervisor.errors import EXIT_CONFIG, ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "units" / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.path == str(path)
    return info.value.problems


def test_example_config_is_valid() -> None:
    cfg = config.load(EXAMPLE)
    assert [t.unit for t in cfg.targets] == [
        "trader.service",
        "dashboard.service",
        "position-monitor.service",
        None,  # the host: disk checks on the home filesystem and on state_dir
    ]
    disk = cfg.target("disk")
    assert disk is not None
    assert [p.path for p in disk.probes if isinstance(p, config.DiskProbe)] == [
        Path.home(),
        Path.home() / ".local" / "state" / "sidecar-supervisor",
    ]
    assert cfg.http.host == "127.0.0.1"
    assert cfg.http.port == 5051
    assert cfg.target("dashboard").ports == [5050]  # type: ignore[union-attr]


def test_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == ["file not found (check-config --config PATH)"]


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    [msg] = problems(write(tmp_path, "[http\nport = 1\n"))
    assert msg.startswith("TOML syntax error")
    assert "line 1" in msg


def test_every_validation_error_is_listed_with_its_dotted_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[http]
port = 70000
colour = "red"
[[targets]]
name = "trader"
unit = "trader"
[[targets]]
name = "dash"
unit = "dashboard.service"
ports = [5050, 0]
""",
    )
    got = problems(path)
    assert "http.port: Input should be less than or equal to 65535 (got 70000)" in got
    assert "http.colour: unknown key" in got
    assert any(p.startswith("targets[0](trader).unit: must be a unit name") for p in got)
    assert any(p.startswith("targets[1](dash).ports[1]:") for p in got)
    assert len(got) == 4


def test_allowed_user_ids_are_optional_and_never_empty(tmp_path: Path) -> None:
    base = '[[targets]]\nname="a"\nunit="a.service"\n[alerts.telegram]\ntoken="1:abcdefgh"\n'
    cfg = config.load(write(tmp_path, base + "chat_ids = [1]\n"))
    assert cfg.alerts.telegram is not None and cfg.alerts.telegram.allowed_user_ids is None
    cfg = config.load(write(tmp_path, base + "chat_ids = [1]\nallowed_user_ids = [7, 8]\n"))
    assert cfg.alerts.telegram is not None and cfg.alerts.telegram.allowed_user_ids == [7, 8]
    [problem] = problems(write(tmp_path, base + "chat_ids = [1]\nallowed_user_ids = []\n"))
    assert problem.startswith("alerts.telegram.allowed_user_ids: List should have at least 1")


def test_targets_required_and_unique(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "")) == ["targets: required key is missing"]
    dup = '[[targets]]\nname="a"\nunit="a.service"\n[[targets]]\nname="a"\nunit="b.service"\n'
    assert problems(write(tmp_path, dup)) == ["targets: two targets share the name 'a'"]


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERVISOR_HTTP__PORT", "6001")
    cfg = config.load(write(tmp_path, '[[targets]]\nname="a"\nunit="a.service"\n'))
    assert cfg.http.port == 6001


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    got = problems(
        write(tmp_path, '[http]\napi_key = 12345678\n[[targets]]\nname="a"\nunit="a.service"\n')
    )
    assert got and all("12345678" not in p for p in got)


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config.default_path() == tmp_path / "sidecar-supervisor" / "config.toml"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_cli_ok() -> None:
    result = run_cli("check-config", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "dashboard.service" in result.stdout
    assert "watching 4 targets" in result.stdout
    assert "disk                 (the host): home, state" in result.stdout


def test_check_config_cli_broken_file_exits_78_naming_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, '[[targets]]\nname="trader"\nunit="trader.service"\ncritical="maybe"\n')
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    assert str(path) in result.stderr
    assert "targets[0](trader).critical" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["[http\n", "", "[[targets]]\nname=1\n"])
def test_check_config_never_tracebacks(tmp_path: Path, text: str) -> None:
    result = run_cli("check-config", "--config", str(write(tmp_path, text)))
    assert result.returncode == EXIT_CONFIG
    assert "Traceback" not in result.stderr


def test_run_with_broken_config_exits_78(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == EXIT_CONFIG
    assert "missing.toml" in result.stderr


CHECKS = """
[[targets]]
name = "dashboard"
unit = "dashboard.service"
  [[targets.probes]]
  type = "exec"
  command = ["/usr/lib/nagios/plugins/check_tcp", "-H", "127.0.0.1", "-p", "5050"]
  env = { PGHOST = "127.0.0.1" }
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:5050/feed"
  json = [
    { path = "feed.connected", equals = true },
    { path = "feed.last_message_at", max_age_s = 60 },
    { path = "balance", min = 100, warn_below = 500 },
    { path = "mode", in = ["live", "paper"] },
  ]
  [targets.recovery]
  actions = ["run", "restart"]
  run = ["~/bin/clear-cache", "--all"]

[[targets]]
name = "disk"
  [[targets.probes]]
  type = "disk"
  path = "/"
  warn_percent = 80
  fail_percent = 90
  [[targets.probes]]
  type = "memory"
  [[targets.probes]]
  type = "load"
"""


def test_the_issue_config_shape_loads(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, CHECKS))
    dash, disk = cfg.targets
    exec_probe, http_probe = dash.probes
    assert isinstance(exec_probe, config.ExecProbe)
    assert exec_probe.env == {"PGHOST": "127.0.0.1"}
    assert isinstance(http_probe, config.HttpProbe)
    assert [c.path for c in http_probe.conditions] == [
        "feed.connected",
        "feed.last_message_at",
        "balance",
        "mode",
    ]
    assert http_probe.conditions[3].one_of == ["live", "paper"]
    assert dash.recovery.run == [str(Path.home() / "bin" / "clear-cache"), "--all"]
    assert disk.unit is None
    assert (disk.recovery.enabled, disk.recovery.actions) == (False, [])  # nothing to restart
    assert config.probe_ids(disk) == ["disk", "memory", "load"]


def test_check_config_rejects_bad_checks_with_dotted_paths(tmp_path: Path) -> None:
    text = """
[[targets]]
name = "dashboard"
unit = "dashboard.service"
  [[targets.probes]]
  type = "exec"
  command = []
  [[targets.probes]]
  type = "exec"
  name = "plugin"
  command = ["check_disk", "-w", "20%"]
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:5050/feed"
  json = [{ path = "feed..last_message_at", max_age_s = 60 }, { path = "positions[x]", min = 1 }]

[[targets]]
name = "disk"
  [[targets.probes]]
  type = "disk"
  path = "/"
  [targets.recovery]
  actions = ["restart"]
"""
    path = write(tmp_path, text)
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    lines = result.stderr.splitlines()
    want = [
        "targets[0](dashboard).probes[0](exec).command: must name a program",
        "targets[0](dashboard).probes[1](plugin)(exec).command: the program must be an absolute"
        " path (got 'check_disk')",
        "targets[0](dashboard).probes[2](http).json[0].path: 'feed..last_message_at' is not a"
        " dotted path",
        "targets[0](dashboard).probes[2](http).json[1].path: 'positions[x]' is not a dotted path",
        "targets[1](disk).recovery.actions: a host target (no unit) has nothing to restart: only"
        ' the "run" action can recover it',
    ]
    for line in want:
        assert any(line in got for got in lines), (line, lines)
    assert len(lines) == 1 + len(want)  # the heading, then one line per problem


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            '[[targets.probes]]\ntype = "resources"\nmemory_max_mb = 5\n',
            "targets[0](host).probes[0]: a host target (no unit) cannot have a resources probe",
        ),
        ("ports = [5050]\n", "targets[0](host).ports: a host target (no unit) owns no ports"),
        (
            '[[targets.probes]]\ntype = "disk"\npath = "/"\nwarn_percent = 95\n',
            "targets[0](host).probes[0](disk).warn_percent: must not be above fail_percent",
        ),
        (
            "[targets.recovery]\nenabled = true\n",
            "targets[0](host).recovery.actions: name at least one (restart, run), or set enabled"
            " = false",
        ),
        (
            '[targets.recovery]\nactions = ["run"]\n',
            'targets[0](host).recovery.run: required when actions include "run": the command to'
            " run",
        ),
        (
            '[[targets.probes]]\ntype = "exec"\ncommand = ["/bin/true"]\nenv = { "A-B" = "1" }\n',
            "targets[0](host).probes[0](exec).env: 'A-B' is not a valid environment variable name",
        ),
    ],
)
def test_host_and_action_rules(tmp_path: Path, body: str, problem: str) -> None:
    got = problems(write(tmp_path, f'[[targets]]\nname = "host"\n{body}'))
    assert got == [problem]


def test_a_host_target_recovers_only_by_running_a_command(tmp_path: Path) -> None:
    text = '[[targets]]\nname = "logs"\n[targets.recovery]\nrun = ["/usr/sbin/logrotate", "-f"]\n'
    target = config.load(write(tmp_path, text)).targets[0]
    assert (target.recovery.enabled, target.recovery.actions) == (True, ["run"])
