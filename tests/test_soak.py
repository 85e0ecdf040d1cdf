"""The soak report: RSS per process group, p99 minute by minute."""

from __future__ import annotations

import os

from cobrowse.loadtest.soak import (
    ChannelSampler,
    RssSampler,
    channels_in_metrics,
    format_channels,
    format_soak,
    group_rss_bytes,
    p99_by_minute,
    tunnels_in_status,
)

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
    sampler.times = [0.0, 65.0]
    text = format_soak(sampler, [(0, 12.0), (1, 14.0)], failures=0)
    assert "node-1" in text
    assert "+10.0%" in text
    assert "node-1: 1: 100.0, 2: 110.0" in text
    assert "errors: 0" in text
    assert "1: 12 ms, 2: 14 ms" in text


def test_second_half_growth_tells_a_plateau_from_a_leak():
    sampler = RssSampler()
    sampler.samples = [{"warming": 100, "leaking": 100}, {"warming": 150, "leaking": 150}]
    sampler.samples.append({"warming": 150, "leaking": 200})
    sampler.times = [0.0, 30.0, 60.0]
    lines = {line.split()[0]: line for line in format_soak(sampler, [], 0).splitlines() if line}
    assert lines["warming"].split()[-2:] == ["+50.0%", "+0.0%"]
    assert lines["leaking"].split()[-2:] == ["+100.0%", "+33.3%"]


def test_by_minute_keeps_the_last_sample_of_each_minute():
    sampler = RssSampler()
    sampler.samples = [{"node-1": 1}, {"node-1": 2}, {"node-1": 3}, {"node-1": 4}]
    sampler.times = [0.0, 30.0, 59.0, 61.0]
    assert sampler.by_minute() == {"node-1": [(0, 3), (1, 4)]}


def test_sampler_records_elapsed_time_with_each_sample():
    sampler = RssSampler(interval_s=0.05)
    sampler.watch("me", os.getpgrp())
    sampler.start()
    sampler.stop()
    assert len(sampler.times) == len(sampler.samples) >= 2
    assert sampler.times[0] == 0.0
    assert sampler.times == sorted(sampler.times)


METRICS = """# HELP cobrowse_realtime_channels Open realtime channels, by role.
# TYPE cobrowse_realtime_channels gauge
cobrowse_realtime_channels{role="customer"} 12.0
cobrowse_realtime_channels{role="agent"} 11.0
cobrowse_realtime_messages_total{direction="in",type="events"} 900.0
"""


def test_open_channels_are_read_from_the_nodes_metrics():
    assert channels_in_metrics(METRICS) == {"customer": 12, "agent": 11}
    assert channels_in_metrics("") == {}


def test_tunnels_are_read_from_the_routers_status():
    status = {"nodes": [{"name": "node-1", "tunnels": 4}, {"name": "node-2", "tunnels": 6}]}
    assert tunnels_in_status(status) == 10
    assert tunnels_in_status({}) == 0


def test_the_channel_sampler_learns_urls_and_reports_by_minute():
    sampler = ChannelSampler()
    sampler.watch_url("node-1", "node", "http://127.0.0.1:1/cobrowse")
    sampler.watch_url("router", "router", "http://127.0.0.1:2")
    sampler.watch_url("locust", "locust", "")
    assert sampler.metrics_urls == {"node-1": "http://127.0.0.1:1/cobrowse/metrics"}
    assert sampler.status_url == "http://127.0.0.1:2/lb/status"
    sampler.times = [10.0, 55.0, 65.0]
    sampler.samples = [
        {"customer": 1, "agent": 1, "tunnels": 2},
        {"customer": 5, "agent": 5, "tunnels": 10},
        {"customer": 6, "agent": 5},
    ]
    assert format_channels(sampler) == (
        "open channels by minute: 1: customers 5, agents 5, tunnels 10; 2: customers 6, agents 5"
    )


def test_the_live_soak_report_shows_delivery_and_loss():
    sampler = RssSampler()
    sampler.samples = [{"node-1": 100 * 2**20}, {"node-1": 101 * 2**20}]
    sampler.times = [0.0, 60.0]
    live = {"delivered": 5000, "lost": 0, "duplicated": 0, "out of order": 0}
    text = format_soak(sampler, [(0, 12.0)], 0, live, ChannelSampler())
    assert "delivered 5000, lost 0, duplicated 0, out of order 0" in text
    assert "delivery p99 by minute: 1: 12 ms" in text
    assert "open channels by minute: none sampled" in text


def test_p99_by_minute_of_one_request_name(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text(HEADER + row(1000, "10") + row(1000, "70", name="agent: events"))
    assert p99_by_minute(history, "agent: events") == [(0, 70.0)]
