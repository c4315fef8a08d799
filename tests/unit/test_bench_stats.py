"""The benchmark's pure figures: summaries, /health times, wrk's output, watchdog gaps, RSS
growth."""

from __future__ import annotations

import pytest

from devtools.bench.settings import BenchError
from devtools.bench.stats import (
    max_gap,
    outcome,
    parse_answers,
    parse_time,
    parse_wrk,
    percentiles,
    rss_growth,
    summary,
    watchdog_verdict,
)

WRK = """Running 1s test @ http://127.0.0.1:38999/health
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.28ms    1.36ms  13.74ms   86.09%
    Req/Sec     1.31k     0.94k    2.57k    65.00%
  Latency Distribution
     50%  850.00us
     75%    2.33ms
     90%    4.11ms
     99%    1.02s
  2614 requests in 1.00s, 1.30MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:   2607.10
Transfer/sec:      1.29MB
"""


def test_summary_of_samples() -> None:
    s = summary([3.0, 1.0, 2.00004])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.00004, 1.0, 3.0, 3)
    assert s["values"] == [3.0, 1.0, 2.0]


def test_percentiles_interpolate_p99_and_take_one_sample_as_is() -> None:
    p = percentiles([float(v) for v in range(1, 101)])
    assert p["p50"] == 50.5
    assert p["p99"] == pytest.approx(99.01)
    assert (p["min"], p["max"], p["n"]) == (1.0, 100.0, 100)
    one = percentiles([4.2])
    assert one["p50"] == one["p99"] == one["max"] == 4.2


def test_outcome_keeps_the_misses_and_how_long_was_waited() -> None:
    assert outcome([1.0, 3.0], [], 60.0) == {
        "recovered": 2,
        "not_recovered": 0,
        **summary([1.0, 3.0]),
    }
    missed = outcome([], ["not serving after 6 s"], 6.0)
    assert missed == {
        "recovered": 0,
        "not_recovered": 1,
        "waited_s": 6.0,
        "why": ["not serving after 6 s"],
    }


def test_parse_time_reads_health_timestamps_in_utc() -> None:
    assert parse_time("1970-01-01T00:01:40.250Z") == 100.25


def test_parse_wrk_reads_rate_latencies_and_errors() -> None:
    level = parse_wrk(WRK)
    assert level == {
        "rps": 2607.10,
        "requests": 2614,
        "p50_ms": pytest.approx(0.85),
        "p90_ms": 4.11,
        "p99_ms": 1020.0,
        "non_2xx": 17,
        "socket_errors": 10,
    }


def test_parse_wrk_without_errors_counts_zero() -> None:
    clean = "\n".join(
        line for line in WRK.splitlines() if "errors" not in line and "Non-2xx" not in line
    )
    level = parse_wrk(clean)
    assert (level["non_2xx"], level["socket_errors"]) == (0, 0)


def test_parse_wrk_refuses_what_it_cannot_read() -> None:
    with pytest.raises(BenchError, match="cannot read wrk's output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_max_gap_counts_the_last_ping_before_the_window_and_the_time_since_the_last() -> None:
    pings = [0.0, 1.0, 2.5, 3.0]
    assert max_gap(pings, 0.5, 3.2) == 1.5  # 1.0 -> 2.5
    assert max_gap(pings, 0.5, 5.0) == 2.0  # 3.0 -> the end
    assert max_gap([0.0], 0.5, 1.0) == 1.0  # only the ping before: 0.0 -> the end
    assert max_gap([2.0], 0.5, 2.1) == 1.5  # no ping before: the start -> the first
    assert max_gap([], 0.5, 2.0) == 1.5


def test_watchdog_verdict_is_late_only_past_the_interval_and_its_slack() -> None:
    pings = [0.0, 1.0, 2.02, 3.3]
    on_time = watchdog_verdict(pings, 0.9, 2.5, interval_s=1.0, slack_s=0.25)
    assert on_time == {"max_gap_s": 1.02, "limit_s": 1.25, "on_time": True}
    late = watchdog_verdict(pings, 0.9, 3.5, interval_s=1.0, slack_s=0.25)
    assert late == {"max_gap_s": 1.28, "limit_s": 1.25, "on_time": False}  # 2.02 -> 3.3
    # No ping after the burst yet: the time since the last one counts against it.
    assert not watchdog_verdict([0.0], 0.5, 1.5, interval_s=1.0, slack_s=0.25)["on_time"]


def test_rss_growth_is_the_median_of_pairwise_differences() -> None:
    growth = rss_growth([40.0, 45.0, 41.0], [38.0, 38.5, 39.5])
    assert growth["growth_mb"]["values"] == [2.0, 6.5, 1.5]
    assert growth["growth_mb"]["median"] == 2.0  # not 41.0 - 38.5
    assert growth["on_mb"]["median"] == 41.0
    assert growth["off_mb"]["n"] == 3


def test_rss_growth_refuses_readings_that_do_not_pair_up() -> None:
    with pytest.raises(BenchError, match="do not pair up: 2 on, 1 off"):
        rss_growth([40.0, 41.0], [38.0])
    with pytest.raises(BenchError):
        rss_growth([], [])


def test_answers_count_served_throttled_and_other_from_the_counting_script() -> None:
    text = WRK.replace(
        "Requests/sec:", "answers: served 300 throttled 2300 other 14 in 2000000 us\nRequests/sec:"
    )
    got = parse_answers(text)
    assert got == {"served": 300, "throttled": 2300, "other": 14, "rps": 150.0}
    with pytest.raises(BenchError, match="no answer counts"):
        parse_answers(WRK)
