"""SUPERVISOR_* variables over the config file: the rules pydantic-settings had, kept without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor import config
from supervisor.errors import ConfigError

TARGET = '[[targets]]\nname = "a"\nunit = "a.service"\n'
KEY = "file-api-key-0123456789"


def load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return config.load(path)


def test_a_nested_variable_changes_one_key_and_keeps_the_rest_of_its_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERVISOR_HTTP__PORT", "6002")
    cfg = load(tmp_path, f'[http]\nport = 5999\napi_key = "{KEY}"\n{TARGET}')
    assert cfg.http.port == 6002
    assert cfg.http.api_key is not None and cfg.http.api_key.get_secret_value() == KEY


def test_names_are_case_insensitive_and_tables_and_lists_are_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("supervisor_dry_run", "true")
    monkeypatch.setenv("SUPERVISOR_HTTP", '{"port": 6003, "access_log": true}')
    monkeypatch.setenv("SUPERVISOR_HTTP__HOST", "127.0.0.2")  # refines the table given whole
    monkeypatch.setenv("SUPERVISOR_TARGETS", '[{"name": "b", "unit": "b.service"}]')
    cfg = load(tmp_path, TARGET)
    assert cfg.dry_run is True
    assert (cfg.http.port, cfg.http.access_log, cfg.http.host) == (6003, True, "127.0.0.2")
    assert [t.name for t in cfg.targets] == ["b"]


def test_a_variable_for_no_key_is_ignored_and_an_unknown_nested_key_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERVISOR_NOT_A_KEY", "1")
    assert load(tmp_path, TARGET).http.port == 5051
    monkeypatch.setenv("SUPERVISOR_HTTP__PROT", "1")
    assert the_problem(tmp_path) == "http.prot: unknown key"


def the_problem(tmp_path: Path) -> str:
    """The one problem loading a valid file finds, with what the environment says."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, TARGET)
    assert info.value.path == str(tmp_path / "config.toml")
    [problem] = info.value.problems
    return problem


def test_bad_json_names_the_file_the_key_and_the_variable_never_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERVISOR_ALERTS__TELEGRAM", '{"token": "s3cret-value"')
    problem = the_problem(tmp_path)
    assert problem.startswith("alerts.telegram (set by SUPERVISOR_ALERTS__TELEGRAM in the")
    assert "not valid JSON" in problem and "s3cret" not in problem


def test_a_bad_value_is_reported_like_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERVISOR_HTTP__PORT", "not-a-port")
    assert the_problem(tmp_path).startswith("http.port: Input should be a valid integer")


def test_the_telegram_token_can_come_from_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERVISOR_ALERTS__TELEGRAM__TOKEN", "123456:from-the-environment")
    cfg = load(tmp_path, f"{TARGET}[alerts.telegram]\nchat_ids = [42]\n")
    assert cfg.alerts.telegram is not None
    assert cfg.alerts.telegram.read_token() == "123456:from-the-environment"
    assert cfg.alerts.telegram.chat_ids == [42]
