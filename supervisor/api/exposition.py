"""The Prometheus text format (0.0.4) for metric families built at each scrape.

The daemon exports only what its collectors build from memory at a scrape: gauges, counters
and one histogram, with labels, HELP and TYPE lines, no timestamps and no `_created`. That
is all it used of prometheus_client, whose import cost the daemon 1.1 MB of RSS (and
http.server, wsgiref and socketserver with it). The classes keep the names and the calls of
prometheus_client's custom-collector API (`GaugeMetricFamily(...).add_metric(...)`), and
`render` writes what its `generate_latest` wrote for them, byte for byte (the unit tests
compare the two and promtool lints the result).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, Protocol


class Sample(NamedTuple):
    """One series' value: its full name (with `_total`, `_bucket`, ...) and labels."""

    name: str
    labels: dict[str, str]
    value: float


class Metric:
    """A metric family: a name, its HELP words, its type and its samples."""

    type = "untyped"
    suffix = ""  # of its series' names

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        self.name = name.removesuffix(self.suffix)
        self.documentation = documentation
        self.samples: list[Sample] = []
        self._labelnames = tuple(labels or ())
        if value is not None:
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """One series: its label values, in the order of the family's label names."""
        self.samples.append(Sample(self.name + self.suffix, self._labels(labels), value))

    def _labels(self, values: Sequence[str]) -> dict[str, str]:
        return dict(zip(self._labelnames, values, strict=True))


class GaugeMetricFamily(Metric):
    """A value that goes up and down."""

    type = "gauge"


class CounterMetricFamily(Metric):
    """A count that only grows: named without `_total`, its series with it."""

    type = "counter"
    suffix = "_total"


class HistogramMetricFamily(Metric):
    """Cumulative buckets (`le`, the last "+Inf"), their count and the sum of what was seen."""

    type = "histogram"

    def add_metric(  # type: ignore[override]  # prometheus_client's signature
        self, labels: Sequence[str], buckets: Sequence[tuple[str, float]], sum_value: float
    ) -> None:
        """One series' buckets, then `_count` (the "+Inf" bucket) and `_sum`."""
        base = self._labels(labels)
        for le, count in buckets:
            self.samples.append(Sample(f"{self.name}_bucket", {**base, "le": le}, count))
        self.samples.append(Sample(f"{self.name}_count", base, buckets[-1][1]))
        self.samples.append(Sample(f"{self.name}_sum", base, sum_value))


class Collector(Protocol):
    """Builds its families at each scrape."""

    def collect(self) -> Iterator[Metric]:
        """The families, in the order they are exported."""


class Registry:
    """The collectors of one /metrics, in the order they were registered."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        """Export what `collector` builds, after what the others build."""
        self._collectors.append(collector)

    def collect(self) -> Iterator[Metric]:
        """Every family of every collector."""
        for collector in self._collectors:
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One series' value (None: no such series); for tests, it builds every family."""
        want = labels or {}
        for metric in self.collect():
            for sample in metric.samples:
                if sample.name == name and sample.labels == want:
                    return sample.value
        return None


def render(families: Iterable[Metric]) -> bytes:
    """The text exposition: per family its HELP and TYPE lines, then its samples."""
    out: list[str] = []
    for metric in families:
        name = metric.name + metric.suffix  # a counter is exported as `<name>_total`
        out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n")
        out.append(f"# TYPE {name} {metric.type}\n")
        out.extend(_line(sample) for sample in metric.samples)
    return "".join(out).encode()


def _line(sample: Sample) -> str:
    labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(sample.labels.items()))
    where = f"{{{labels}}}" if labels else ""
    return f"{sample.name}{where} {go_float(sample.value)}\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def go_float(value: float) -> str:
    """A value as Go (and so Prometheus) writes it: +Inf, -Inf, NaN, 1.0, 1.5e+07."""
    d = float(value)
    if math.isinf(d):
        return "+Inf" if d > 0 else "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    # Go switches to exponents sooner than Python (positive values only matter: le, sizes).
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s
