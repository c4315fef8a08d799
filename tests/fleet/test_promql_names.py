"""The metric-name extractor the fleet tests rely on: it must neither miss nor invent names."""

from __future__ import annotations

import pytest

from tests.fleet.contrib import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="x"} == 0', {"up"}),
        ("rate(a_total[5m]) * 100 > b_percent", {"a_total", "b_percent"}),
        (
            'sum by (job, instance, host, target) (increase(c{action=~".*start"}[1h])) '
            "or on (instance) group_left (unit) d",
            {"c", "d"},
        ),
        ("histogram_quantile(0.95, sum by (le) (rate(e_bucket[$__rate_interval])))", {"e_bucket"}),
        ("f offset 5m and bool g unless h", {"f", "g", "h"}),
        ("instance:x_seconds:rate5m * 1e3", {"instance:x_seconds:rate5m"}),
        ('absent(up{job="sidecar-supervisor"})', {"up"}),
        ('label_replace(i, "dst", "$1", "src", "(.*)")', {"i"}),
        ("count(j == 0) or vector(0)", {"j"}),
        ("sum(k) without (le)", {"k"}),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
