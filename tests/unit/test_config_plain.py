"""The config the daemon holds: plain classes matching the schema's, checked in a child process.

pydantic (the schema) costs the daemon about 16 MB of RSS for good; it is loaded only where a
config is checked, and the daemon checks its config in a short-lived child process.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import supervisor.config as plain
from supervisor.config import schema
from supervisor.config.file import ConfigFile, load_apart
from supervisor.config.schema import probes as schema_probes
from supervisor.config.schema import targets as schema_targets
from supervisor.errors import EXIT_CONFIG, ConfigError
from supervisor.runtime.state import write_private

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "units" / "config.example.toml"
TARGETS = """
[[targets]]
name = "dashboard"
unit = "dashboard.service"
timeout_s = 3
  [[targets.probes]]
  type = "http"
  url = "http://127.0.0.1:5050/health"
  json = [{ path = "mode", in = ["live"] }]
"""
MODELS = [
    m
    for module in (schema, schema_probes, schema_targets)
    for m in vars(module).values()
    if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == module.__name__
]


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    return {
        name: f.get_default(call_default_factory=True)
        for name, f in model.model_fields.items()
        if not f.is_required() and name != "state_dir"
    }


@pytest.mark.parametrize("model", [m for m in MODELS if not m.__name__.startswith("_")], ids=str)
def test_each_schema_model_has_a_plain_class_with_its_fields_and_defaults(
    model: type[BaseModel],
) -> None:
    made = getattr(plain, model.__name__)
    fields = {f.name: f for f in dataclasses.fields(made)}
    assert set(fields) == set(model.model_fields)
    for name, default in _defaults(model).items():
        f = fields[name]
        got = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        assert plain_of(default) == got, (model.__name__, name)
    required = {n for n, f in model.model_fields.items() if f.is_required()} - {"type"}
    missing = {
        n for n, f in fields.items() if f.default is f.default_factory is dataclasses.MISSING
    }
    assert missing == required, model.__name__


def plain_of(value: Any) -> Any:
    return schema.to_plain(value)


def test_a_checked_file_is_all_plain_classes_with_secrets_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[http]\napi_key = "a-key-long-enough-0123"\n' + TARGETS)
    cfg = plain.load(path)
    assert type(cfg) is plain.Config
    assert isinstance(cfg.http.api_key, plain.Secret)
    assert cfg.http.api_key.get_secret_value() == "a-key-long-enough-0123"
    assert "a-key-long-enough" not in repr(cfg)
    [probe] = cfg.targets[0].probes
    assert type(probe) is plain.HttpProbe
    assert probe.conditions == [plain.JsonCondition(path="mode", one_of=["live"])]
    assert probe.timeout_s == 3.0  # the target's timing is its probes' default
    assert dataclasses.replace(cfg, dry_run=True).dry_run


def test_the_daemon_checks_its_config_in_a_child_and_never_loads_pydantic() -> None:
    """What `supervisor run` imports, plus its config load: pydantic stays out of the process."""
    code = (
        "import sys, pathlib\n"
        "import supervisor.cli, supervisor.app.daemon, supervisor.alerts.telegram\n"
        "from supervisor.config.file import ConfigFile\n"
        f"cfg = ConfigFile(pathlib.Path({str(EXAMPLE)!r}), lambda p, b: None).load()\n"
        "assert [t.name for t in cfg.targets][:1] == ['trader'], cfg\n"
        "print(sorted(m for m in sys.modules if m.startswith('pydantic')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_child_names_the_file_the_field_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[targets]]\nname = "trader"\nunit = "trader.service"\ncritical = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        ConfigFile(path, write_private).load()
    assert info.value.path == str(path)
    assert info.value.problems == [
        "targets[0](trader).critical: Input should be a valid boolean, unable to interpret input"
        " (got 'maybe')"
    ]
    with pytest.raises(ConfigError) as missing:
        load_apart(tmp_path / "nope.toml")
    assert missing.value.problems == ["file not found (check-config --config PATH)"]


def test_the_child_sees_the_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[targets]]\nname = "trader"\nunit = "trader.service"\n')
    monkeypatch.setenv("SUPERVISOR_HTTP__PORT", "6123")
    cfg, raw = load_apart(path)
    assert cfg.http.port == 6123
    assert raw == path.read_bytes()


def test_run_with_a_bad_field_exits_78_naming_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[http]\nport = 70000\n[[targets]]\nname = "trader"\nunit = "trader.service"\n')
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_CONFIG
    assert f"bad config {path}: http.port: Input should be less than or equal to 65535" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
