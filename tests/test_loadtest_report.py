"""Reading Locust's CSV and the scenario's outcome, and the summary `cobrowse loadtest` prints."""

from __future__ import annotations

import json

import pytest

from cobrowse.loadtest.cpushare import CpuShare
from cobrowse.loadtest.locuststats import (
    Outcome,
    Rate,
    RequestStats,
    format_summary,
    read_outcome,
    read_stats,
    sustained_rate,
)

STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
    "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
    "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
NO_PERCENTILES = ",".join(["N/A"] * 11)
STATS_ROWS = [
    "POST,/sessions,597,1,4,4.9,1.2,68.7,100.0,198.76,0.33,4,5,6,6,8,9,11,12,69,69,69",
    "GET,/sessions/[token] (agent),595,0,4,4.2,0.9,20.7,151.0,198.09,0.0,"
    "4,4,5,5,7,8,10,13,21,21,21",
    f"GET,/users/[userToken]/session/stop,0,0,0,0.0,0,0,0,0.0,0.0,{NO_PERCENTILES}",
    ",Aggregated,1192,1,4,4.5,0.9,68.7,125.4,396.85,0.33,4,5,5,6,8,9,11,13,69,69,69",
]
HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size"
)


def history_row(second: int, users: int, name: str, total: int) -> str:
    kind = "POST" if name == "/sessions" else ""
    return f"{second},{users},{kind},{name},0,0,4,5,6,6,8,9,11,12,69,69,69,{total},0,4,4.9,1,68,100"


@pytest.fixture
def stats_csv(tmp_path):
    path = tmp_path / "stats_stats.csv"
    path.write_text("\n".join([STATS_HEADER, *STATS_ROWS]) + "\n")
    return path


def test_stats_rows_are_read_with_their_percentiles(stats_csv):
    rows = read_stats(stats_csv)
    assert [row.label for row in rows] == [
        "POST /sessions",
        "GET /sessions/[token] (agent)",
        "GET /users/[userToken]/session/stop",
        "all",
    ]
    create = rows[0]
    assert (create.requests, create.failures) == (597, 1)
    assert create.per_s == pytest.approx(198.76)
    assert (create.p50_ms, create.p95_ms, create.p99_ms) == (4.0, 9.0, 12.0)


def test_a_request_type_without_requests_has_no_percentiles(stats_csv):
    stop = read_stats(stats_csv)[2]
    assert (stop.requests, stop.p50_ms, stop.p95_ms, stop.p99_ms) == (0, None, None, None)


def write_history(tmp_path, rows):
    path = tmp_path / "stats_stats_history.csv"
    path.write_text("\n".join([HISTORY_HEADER, *rows]) + "\n")
    return path


def test_the_sustained_rate_leaves_the_ramps_out(tmp_path):
    rows = [
        history_row(100, 10, "/sessions", 50),  # ramping up
        history_row(100, 10, "Aggregated", 200),
        history_row(101, 20, "/sessions", 150),  # at the peak from here
        history_row(102, 20, "/sessions", 350),
        history_row(103, 20, "Aggregated", 1000),
        history_row(103, 20, "/sessions", 550),
        history_row(104, 5, "/sessions", 560),  # ramping down
    ]
    assert sustained_rate(write_history(tmp_path, rows)) == Rate(200.0, 2, 20)


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [history_row(100, 20, "Aggregated", 10)],
        [history_row(100, 20, "/sessions", 10), history_row(101, 10, "/sessions", 20)],
    ],
)
def test_no_sustained_rate_without_two_samples_at_the_peak(tmp_path, rows):
    assert sustained_rate(write_history(tmp_path, rows)) is None


def test_the_outcome_is_read_from_the_locustfiles_json(tmp_path):
    path = tmp_path / "outcome.json"
    path.write_text(
        json.dumps(
            {
                "passed": False,
                "summary": "SLO MISSED (misroutes 3 > 0): …",
                "measured": {"misroutes": 3},
                "counters": {"created": 10, "misroutes": 3},
            }
        )
    )
    assert read_outcome(path) == Outcome(
        False, "SLO MISSED (misroutes 3 > 0): …", 3, {"created": 10, "misroutes": 3}
    )


@pytest.mark.parametrize("content", [None, "", "{not json"])
def test_no_outcome_when_locust_wrote_none(tmp_path, content):
    path = tmp_path / "outcome.json"
    if content is not None:
        path.write_text(content)
    assert read_outcome(path) is None


def summary_rows() -> list[RequestStats]:
    return [
        RequestStats("POST", "/sessions", 12000, 0, 200.0, 17.0, 35.0, 49.0),
        RequestStats("GET", "/sessions/[token] (agent)", 11990, 3, 199.8, 16.0, 33.0, None),
        RequestStats("", "Aggregated", 23990, 3, 399.8, 17.0, 34.0, 48.0),
    ]


def test_the_summary_shows_creates_per_second_percentiles_failures_and_misroutes():
    text = format_summary(
        summary_rows(),
        Rate(210.5, 50, 60),
        Outcome(True, "SLO passed: …", 0),
        [CpuShare("node-1", 30.0, 60.0, 2), CpuShare("locust", 45.0, 60.0, 2)],
    )
    lines = text.splitlines()
    assert lines[0] == (
        "sessions created: 210.5/s sustained (50 s at 60 users), 200.0/s over the run, 12000 in all"
    )
    assert lines[2].startswith("request")
    assert lines[2].endswith("req/s  p50 ms  p95 ms  p99 ms")
    assert lines[3].split() == ["POST", "/sessions", "12000", "0", "200.0", "17", "35", "49"]
    assert lines[4].split()[-3:] == ["16", "33", "-"]
    assert lines[5].split()[0] == "all"
    assert "failures: 3 of 23990 (0.01%)" in lines
    assert "misroutes: 0" in lines
    assert "SLO passed: …" in lines
    assert "CPU during the run (60 s; 100% = one CPU, 2 CPUs):" in lines
    assert lines[-2].split() == ["node-1", "50%", "25%"]
    assert lines[-1].split() == ["locust", "75%", "38%"]


def test_the_summary_says_when_misroutes_are_unknown():
    text = format_summary(summary_rows(), None, None, [])
    assert "misroutes: unknown (Locust wrote no outcome)" in text
    assert "sustained" not in text
    assert "CPU" not in text


def test_the_table_columns_line_up():
    lines = format_summary(summary_rows(), None, None, []).splitlines()[2:6]
    ends = {len(line) for line in lines}
    assert len(ends) == 1  # right-aligned numbers end in the same column


def test_a_live_outcome_is_read_with_its_kind(tmp_path):
    path = tmp_path / "outcome.json"
    path.write_text(
        json.dumps(
            {
                "kind": "live",
                "passed": True,
                "summary": "SLO passed: delivery p99 9 ms …",
                "measured": {"delivered": 90, "lost": 0},
                "counters": {"delivered": 90},
            }
        )
    )
    outcome = read_outcome(path)
    assert outcome is not None
    assert (outcome.kind, outcome.misroutes, outcome.counters) == ("live", 0, {"delivered": 90})


def test_the_live_summary_shows_messages_delivered_latency_and_counters():
    rows = [
        RequestStats("POST", "/sessions", 50, 0, 0.8, 20.0, 40.0, 45.0),
        RequestStats("WS", "agent: events", 9000, 0, 150.0, 2.0, 9.0, 30.0),
        RequestStats("", "Aggregated", 18100, 0, 301.0, 2.0, 9.0, 31.0),
    ]
    counters = {"delivered": 9100, "lost": 0, "sessions": 50, "something new": 1}
    text = format_summary(
        rows, Rate(180.2, 40, 100), Outcome(True, "SLO passed: …", 0, counters, "live"), []
    )
    lines = text.splitlines()
    assert lines[0] == (
        "messages delivered live to agents: 180.2/s sustained (40 s at 100 users), 150.0/s over "
        "the run, 9000 in all; latency p50 2, p95 9, p99 30 ms"
    )
    assert "live: sessions 50, delivered 9100, lost 0, something new 1" in lines
    assert "misroutes: 0" not in lines
    assert "SLO passed: …" in lines
