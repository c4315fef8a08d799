"""contrib/alertmanager: the routing example is valid, and routes as docs/FLEET.md says."""

from __future__ import annotations

from pathlib import Path

from tests.fleet.contrib import ALERTMANAGER_CONFIG, alerts, load_yaml, run, tool


def route(labels: dict[str, str]) -> str:
    """The receiver Alertmanager picks for an alert with these labels (amtool, offline)."""
    args = [f"{k}={v}" for k, v in labels.items()]
    result = run(
        tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *args
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_amtool_check_config() -> None:
    result = run(tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_incident_is_sent_by_the_box_or_by_alertmanager_never_both() -> None:
    for rule in alerts():
        labels = {"alertname": rule["alert"], "host": "trading-1", **rule["labels"]}
        receiver = route(labels)
        if rule["labels"]["notified_by"] == "supervisor":
            assert receiver == "box-sends-it", rule["alert"]
        else:
            assert receiver == "telegram", rule["alert"]
    config = load_yaml(ALERTMANAGER_CONFIG)
    silent = next(r for r in config["receivers"] if r["name"] == "box-sends-it")
    assert set(silent) == {"name"}, "the box's own incidents must not be sent from here too"


def test_grouped_by_host() -> None:
    assert load_yaml(ALERTMANAGER_CONFIG)["route"]["group_by"] == ["host"]


def test_inhibition_names_real_alerts_and_a_down_box_silences_the_rest() -> None:
    names = {rule["alert"] for rule in alerts()}
    inhibit = load_yaml(ALERTMANAGER_CONFIG)["inhibit_rules"]
    for rule in inhibit:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            key, _, value = matcher.partition("=")
            if key == "alertname":
                assert value.strip('"') in names, matcher
    down = [r for r in inhibit if r["source_matchers"] == ['alertname="SupervisorDown"']]
    assert down and down[0]["equal"] == ["instance"]
    assert down[0]["target_matchers"] == ['alertname!="SupervisorDown"']


def test_the_telegram_message_template_renders(tmp_path: Path) -> None:
    (receiver,) = [
        r for r in load_yaml(ALERTMANAGER_CONFIG)["receivers"] if r["name"] == "telegram"
    ]
    message = receiver["telegram_configs"][0]["message"]
    empty = tmp_path / "empty.tmpl"
    empty.write_text('{{ define "unused" }}{{ end }}\n')
    result = run(
        tool("amtool"),
        "template",
        "render",
        f"--template.glob={empty}",
        f"--template.text={message}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "firing" in result.stdout and "resolved" in result.stdout
