"""The Nagios plugin API, parsed: levels, the reason, and performance data in base units."""

from __future__ import annotations

import pytest

from supervisor.model import PerfDatum, Status
from supervisor.probing import nagios


@pytest.mark.parametrize(
    ("code", "level"),
    [
        *((0, Status.PASS), (1, Status.WARN), (2, Status.FAIL), (3, Status.UNKNOWN)),
        *((4, Status.UNKNOWN), (127, Status.UNKNOWN), (-9, Status.UNKNOWN)),
    ],
)
def test_exit_codes(code: int, level: Status) -> None:
    assert nagios.level(code) is level


def test_check_disk_output() -> None:
    out = nagios.parse(
        1,
        "DISK WARNING - free space: / 3326 MiB (22% inode=91%);| /=11334MB;12636;14215;0;15795\n",
    )
    assert out.status is Status.WARN
    assert out.reason == "DISK WARNING - free space: / 3326 MiB (22% inode=91%);"
    assert out.perfdata == (PerfDatum("/", 11334 * 1024**2, "bytes"),)


def test_long_output_and_more_perfdata_after_a_bar() -> None:
    text = "OK - all fine | time=15ms;100;200\nline two of the long text\n"
    text += "| rows=42c 'hit ratio'=97.5%\n"
    out = nagios.parse(0, text)
    assert out.reason == "OK - all fine"
    assert out.perfdata == (
        PerfDatum("time", 0.015, "seconds"),
        PerfDatum("rows", 42.0, ""),
        PerfDatum("hit ratio", 0.975, "ratio"),
    )


@pytest.mark.parametrize(
    ("datum", "expected"),
    [
        ("t=1.5s", PerfDatum("t", 1.5, "seconds")),
        ("t=250us", PerfDatum("t", 0.00025, "seconds")),
        ("size=2KB;;;0", PerfDatum("size", 2048.0, "bytes")),
        ("size=1GB", PerfDatum("size", 1024.0**3, "bytes")),
        ("size=3TB", PerfDatum("size", 3 * 1024.0**4, "bytes")),
        ("used=-12.5", PerfDatum("used", -12.5, "")),
        ("e=1e3", PerfDatum("e", 1000.0, "")),
        ("'it''s'=5%", PerfDatum("it's", 0.05, "ratio")),
        ("odd=7furlongs", PerfDatum("odd", 7.0, "")),  # unknown unit: kept as a plain number
    ],
)
def test_units_convert_to_base(datum: str, expected: PerfDatum) -> None:
    assert nagios.parse_perfdata(datum) == [expected]


def test_malformed_data_is_skipped_and_the_rest_kept() -> None:
    got = nagios.parse_perfdata("a=U junk =5 b=abc c=1;2;3;4;5 'unterminated=3")
    assert got == [PerfDatum("c", 1.0, "")]


def test_no_output_and_no_perfdata() -> None:
    out = nagios.parse(3, "")
    assert (out.status, out.reason, out.perfdata) == (Status.UNKNOWN, "", ())
