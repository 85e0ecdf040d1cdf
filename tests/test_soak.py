"""The soak report: RSS per process group, p99 minute by minute."""

from __future__ import annotations

import os

from cobrowse.soak import RssSampler, format_soak, group_rss_bytes, p99_by_minute

HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count\n"
)


def row(timestamp: int, p99: str, name: str = "Aggregated") -> str:
    return f"{timestamp},10,,{name},1,0,1,1,1,1,1,1,1,{p99},1,1,1,1,0\n"


def test_p99_by_minute_takes_the_median_of_each_minutes_windows(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text(
        HEADER
        + row(1000, "N/A")
        + row(1000, "10")
        + row(1030, "30")
        + row(1050, "20")
        + row(1000 + 61, "50")
        + row(1000 + 61, "999", name="/sessions")
    )
    assert p99_by_minute(history) == [(0, 20.0), (1, 50.0)]


def test_group_rss_counts_this_process_group():
    group = os.getpgrp()
    assert group_rss_bytes({group})[group] > 1_000_000


def test_report_shows_growth_errors_and_trend():
    sampler = RssSampler()
    sampler.samples = [
        {"node-1": 100 * 2**20, "router": 50 * 2**20},
        {"node-1": 110 * 2**20, "router": 50 * 2**20},
    ]
    text = format_soak(sampler, [(0, 12.0), (1, 14.0)], failures=0)
    assert "node-1" in text
    assert "+10.0%" in text
    assert "errors: 0" in text
    assert "1: 12 ms, 2: 14 ms" in text
