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
    assert "watching 3 targets" in result.stdout


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
