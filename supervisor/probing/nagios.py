"""The Nagios plugin API, parsed: exit code to level, the reason, and performance data.

Pure. A plugin prints `TEXT | PERFDATA` on its first line and may print more lines (long
text), where a line holding `|` starts more performance data. Each datum reads
`'label'=value[UOM];[warn];[crit];[min];[max]`; malformed ones are skipped, as Nagios does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from supervisor.model import PerfDatum, Status

EXIT_LEVELS = {0: Status.PASS, 1: Status.WARN, 2: Status.FAIL}  # 3 and anything else: unknown
_VALUE = re.compile(r"^([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)([A-Za-z%µ]*)$")
_SPACE = re.compile(r"\s")
_KIB = 1024.0
# Nagios' units of measure, to Prometheus' base units: seconds, bytes, ratio (0..1).
_UNITS: dict[str, tuple[float, str]] = {
    "": (1.0, ""),
    "c": (1.0, ""),  # a continuous counter: a plain number
    "s": (1.0, "seconds"),
    "ms": (1e-3, "seconds"),
    "us": (1e-6, "seconds"),
    "µs": (1e-6, "seconds"),
    "ns": (1e-9, "seconds"),
    "%": (0.01, "ratio"),
    "b": (1.0, "bytes"),
    "kb": (_KIB, "bytes"),
    "kib": (_KIB, "bytes"),
    "mb": (_KIB**2, "bytes"),
    "mib": (_KIB**2, "bytes"),
    "gb": (_KIB**3, "bytes"),
    "gib": (_KIB**3, "bytes"),
    "tb": (_KIB**4, "bytes"),
    "tib": (_KIB**4, "bytes"),
}


@dataclass(frozen=True, slots=True)
class PluginOutput:
    """What a plugin said: its level, the reason (first line before `|`) and its figures."""

    status: Status
    reason: str
    perfdata: tuple[PerfDatum, ...]


def level(exit_code: int) -> Status:
    """0 pass, 1 warn, 2 fail; 3 (UNKNOWN) and anything else, a signal too, unknown."""
    return EXIT_LEVELS.get(exit_code, Status.UNKNOWN)


def parse(exit_code: int, stdout: str) -> PluginOutput:
    """A plugin's exit code and standard output, understood."""
    lines = stdout.splitlines()
    first = lines[0] if lines else ""
    reason, _, perf = first.partition("|")
    texts = [perf]
    for i, line in enumerate(lines[1:]):
        if "|" in line:  # long text ends here; the rest is performance data
            texts.append(line.partition("|")[2])
            texts.extend(lines[i + 2 :])
            break
    data = tuple(d for text in texts for d in parse_perfdata(text))
    return PluginOutput(level(exit_code), reason.strip(), data)


def parse_perfdata(text: str) -> list[PerfDatum]:
    """Every well-formed datum of a performance data string, in base units."""
    out = []
    for label, rest in _pairs(text):
        datum = _datum(label, rest.split(";", 1)[0])
        if datum is not None:
            out.append(datum)
    return out


def to_base(value: float, uom: str) -> tuple[float, str]:
    """A value in `uom` as (value, base unit); an unknown unit is left as a plain number."""
    factor, unit = _UNITS.get(uom, _UNITS.get(uom.lower(), (1.0, "")))
    return value * factor, unit


def _datum(label: str, value: str) -> PerfDatum | None:
    match = _VALUE.match(value)
    if not label or match is None:  # "U" (undetermined) and garbage alike
        return None
    number, unit = to_base(float(match.group(1)), match.group(2))
    return PerfDatum(label, number, unit)


def _pairs(text: str) -> list[tuple[str, str]]:
    """(label, value-and-thresholds) pairs; labels may be quoted with '' as a quote."""
    pairs = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "'":
            label, i = _quoted(text, i + 1)
        else:
            end = text.find("=", i)
            space = _next_space(text, i)
            if end < 0 or space < end:
                i = space  # no '=' in this word: skip it
                continue
            label, i = text[i:end], end
        if i >= n or text[i] != "=":
            i = _next_space(text, i)
            continue
        end = _next_space(text, i + 1)
        pairs.append((label, text[i + 1 : end]))
        i = end
    return pairs


def _quoted(text: str, i: int) -> tuple[str, int]:
    label = []
    while i < len(text):
        if text[i] == "'":
            if text[i + 1 : i + 2] == "'":
                label.append("'")
                i += 2
                continue
            return "".join(label), i + 1
        label.append(text[i])
        i += 1
    return "".join(label), i


def _next_space(text: str, i: int) -> int:
    match = _SPACE.search(text, i)
    return match.start() if match else len(text)
