"""contrib/prometheus: the rules pass Prometheus' own checks and unit tests (promtool)."""

from __future__ import annotations

from typing import Any

from tests.fleet.contrib import (
    JOB,
    PROMETHEUS_CONFIG,
    RULES,
    RULES_TEST,
    alerts,
    load_yaml,
    metric_names,
    rules,
    run,
    tool,
)

# What the issue asks the rules to cover, by alert name.
EXPECTED_ALERTS = {
    "SupervisorTargetFailing",  # a target failing for N minutes
    "SupervisorCriticalTargetFailing",
    "SupervisorRecoveryGaveUp",
    "SupervisorRestartStorm",  # restarts per hour above a threshold
    "SupervisorTargetFlapping",
    "SupervisorBreakerOpenTooLong",
    "SupervisorAlertDeliveryFailing",  # outbox backlog, Telegram unreachable or token rejected
    "SupervisorAlertsDropped",
    "SupervisorOverCpuBudget",
    "SupervisorOverMemoryBudget",
    "SupervisorDown",  # up == 0
    "SupervisorAbsent",  # no box scraped at all
    "SupervisorHealthFail",  # /health overall fail
}


def test_promtool_check_rules() -> None:
    result = run(tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = run(tool("promtool"), "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_tests_evaluate_records_before_alerts() -> None:
    # Unordered, promtool evaluates the groups in random order, and an alert on a recorded
    # series passes or fails by chance (CI once saw "9 times in an hour" for 8).
    groups = [group["name"] for group in load_yaml(RULES)["groups"]]
    order = load_yaml(RULES_TEST)["group_eval_order"]
    assert sorted(order) == sorted(groups)
    assert order.index("sidecar-supervisor.records") < order.index("sidecar-supervisor.alerts")


def test_promtool_check_config_of_the_scrape_example() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = [job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]]
    assert jobs == [JOB]


def test_every_alert_is_labelled_and_has_a_runbook() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert set(names) == EXPECTED_ALERTS
    assert len(names) == len(set(names))
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["labels"]["notified_by"] in ("supervisor", "alertmanager"), name
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, name
        assert name.startswith("Supervisor") and name.isalnum(), name


def test_up_is_always_read_for_the_supervisor_job_only() -> None:
    for rule in rules():
        if "up" in metric_names(rule["expr"]):
            assert f'up{{job="{JOB}"}}' in rule["expr"], rule


def test_recording_rules_follow_the_level_metric_operation_convention() -> None:
    for rule in rules():
        if "record" in rule:
            level, metric, operation = rule["record"].split(":")
            assert level and operation and metric.startswith("supervisor_"), rule["record"]


def _cases() -> list[tuple[str, bool]]:
    """(alertname, expects alerts) for every evaluation in rules_test.yml."""
    found = []
    for test in load_yaml(RULES_TEST)["tests"]:
        case: dict[str, Any]
        for case in test.get("alert_rule_test", []):
            found.append((case["alertname"], bool(case.get("exp_alerts"))))
    return found


def test_every_alert_has_a_case_that_fires_and_one_that_stays_silent() -> None:
    cases = _cases()
    for name in EXPECTED_ALERTS:
        assert (name, True) in cases, f"no case where {name} fires"
        assert (name, False) in cases, f"no case where {name} stays silent"
