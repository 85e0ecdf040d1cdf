"""The live scenarios' pure parts: the recording, its pace, the send stamp, an agent's checks,
and the live SLO verdict."""

from __future__ import annotations

import argparse
import json
import random

import orjson
import pytest

from tests.loadtest_modules import import_loadtest

livechecks = import_loadtest("livechecks")
slo = import_loadtest("slo")

SNAPSHOT = [{"type": 4, "data": {"href": "http://x/"}}, {"type": 2, "data": {"node": {}}}]
BATCHES = [
    {"t": 1000, "events": SNAPSHOT},
    {"t": 1500, "events": [{"type": 3, "data": {"source": 1}}]},
    {"t": 3000, "events": [{"type": 3, "data": {"source": 2}}]},
]


# ---------------------------------------------------------------------------------------------
# the recording


def test_the_fixture_is_a_real_recording_that_starts_with_a_full_snapshot():
    recording = livechecks.Recording.load()
    assert len(recording) == 195
    assert recording.offsets_ms[0] == 0
    assert 54_000 < recording.offsets_ms[-1] < 55_000
    first = orjson.loads(recording.frame(0, 1, 1.0))
    assert livechecks.has_full_snapshot(first["data"])


def test_a_frame_is_the_batch_with_the_stamp_first():
    recording = livechecks.Recording.from_batches(BATCHES)
    frame = orjson.loads(recording.frame(1, 7, 1_795_000_000_123.456))
    assert frame["type"] == "events"
    assert frame["cseq"] == 7
    stamp, *events = frame["data"]
    assert stamp == {
        "type": 5,
        "data": {"tag": "loadtest", "payload": {"sent": 1_795_000_000_123.456}},
        "timestamp": 1_795_000_000_123,
    }
    assert events == BATCHES[1]["events"]
    assert livechecks.sent_ms(frame["data"]) == pytest.approx(1_795_000_000_123.456)


def test_an_empty_batch_is_the_stamp_alone():
    recording = livechecks.Recording.from_batches([*BATCHES, {"t": 4000, "events": []}])
    assert len(orjson.loads(recording.frame(3, 1, 5.0))["data"]) == 1


@pytest.mark.parametrize(
    "events",
    [[], [{"type": 3}], [{"type": 5, "data": {"tag": "other", "payload": {"sent": 1}}}]],
)
def test_batches_without_the_stamp_have_no_send_time(events):
    assert livechecks.sent_ms(events) is None


@pytest.mark.parametrize(
    ("batches", "message"),
    [
        ([], "no batch"),
        ([{"t": 0, "events": [{"type": 3}]}], "full snapshot"),
        ([{"t": 5, "events": SNAPSHOT}, {"t": 4, "events": []}], "must not decrease"),
    ],
)
def test_a_recording_that_cannot_be_replayed_is_refused(batches, message):
    with pytest.raises(ValueError, match=message):
        livechecks.Recording.from_batches(batches)


def test_the_replay_keeps_the_recorded_pace_and_loops_from_the_snapshot():
    recording = livechecks.Recording.from_batches(BATCHES)  # offsets 0, 0.5, 2.0 s
    assert recording.loop_ms == 3000  # the last offset plus the mean interval
    replay = livechecks.Replay(recording)
    replay.restart(100.0)
    due = []
    for _ in range(7):
        due.append((replay.due_s(), replay.take()))
    assert due == [
        (100.0, 0),
        (100.5, 1),
        (102.0, 2),
        (103.0, 0),  # the next loop, from the full snapshot
        (103.5, 1),
        (105.0, 2),
        (106.0, 0),
    ]
    assert replay.loops == 2


def test_the_speed_divides_the_offsets_and_a_restart_goes_back_to_the_snapshot():
    replay = livechecks.Replay(livechecks.Recording.from_batches(BATCHES), speed=2.0)
    replay.restart(0.0)
    replay.take()
    assert replay.due_s() == 0.25
    replay.take()
    replay.restart(10.0)
    assert (replay.due_s(), replay.take()) == (10.0, 0)


def test_the_speed_must_be_positive():
    with pytest.raises(ValueError, match="above 0"):
        livechecks.Replay(livechecks.Recording.from_batches(BATCHES), speed=0)


def test_backoff_doubles_up_to_ten_seconds_and_waits_longer_after_1008():
    rng = random.Random(1)
    delays = [livechecks.backoff_s(retries, rng=rng) for retries in range(8)]
    assert 0.4 <= delays[0] <= 0.6
    assert 0.8 <= delays[1] <= 1.2
    assert all(8.0 <= delay <= 12.0 for delay in delays[5:])
    assert livechecks.backoff_s(0, 1008, rng) >= 5.4


# ---------------------------------------------------------------------------------------------
# an agent's checks


def events(seq, cseq, snapshot=False, sent=1000.0):
    data = [{"type": 5, "data": {"tag": "loadtest", "payload": {"sent": sent}}}]
    data += SNAPSHOT if snapshot else [{"type": 3, "data": {}}]
    return {"type": "events", "seq": seq, "from": "c", "cseq": cseq, "data": data}


def run(checker, *frames):
    return [checker.check(frame) for frame in frames]


def test_a_clean_stream_has_no_violation():
    checker = livechecks.StreamChecker()
    checked = run(
        checker,
        {"type": "welcome", "seq": 2},
        {"type": "joined", "seq": 3, "userId": "a"},
        events(5, 1, snapshot=True),
        events(6, 2),
        {"type": "mode", "seq": 7, "mode": "pointer"},
        events(8, 3),
    )
    assert [item.violations for item in checked] == [[]] * 6
    assert checked[2].snapshot
    assert checked[2].sent_ms == 1000.0
    assert checker.delivered == 3
    assert (checker.lost, checker.duplicated, checker.out_of_order) == (0, 0, 0)


def test_a_gap_in_cseq_is_lost_batches():
    checker = livechecks.StreamChecker()
    checked = run(checker, events(1, 1, snapshot=True), events(2, 2), events(3, 5))
    assert checked[2].violations == [livechecks.LOST]
    assert checker.lost == 2
    assert checker.missing == {3, 4}


def test_a_cseq_delivered_twice_is_a_duplicate():
    checker = livechecks.StreamChecker()
    checked = run(checker, events(1, 1, snapshot=True), events(2, 2), events(3, 2))
    assert checked[2].violations == [livechecks.DUPLICATE]
    assert checker.duplicated == 1
    assert checker.out_of_order == 0


def test_the_same_message_twice_is_one_duplicate_not_also_out_of_order():
    checker = livechecks.StreamChecker()
    run(checker, events(1, 1, snapshot=True), events(2, 2))
    assert checker.check(events(2, 2)).violations == [livechecks.DUPLICATE]
    assert (checker.duplicated, checker.out_of_order) == (1, 0)


def test_a_batch_after_a_later_one_is_out_of_order_not_lost():
    checker = livechecks.StreamChecker()
    run(checker, events(1, 1, snapshot=True), events(3, 3))
    assert checker.lost == 1
    assert checker.check(events(4, 2)).violations == [livechecks.OUT_OF_ORDER]
    assert (checker.lost, checker.out_of_order) == (0, 1)


def test_a_seq_that_does_not_increase_is_out_of_order():
    checker = livechecks.StreamChecker()
    run(checker, events(5, 1, snapshot=True))
    assert checker.check({"type": "mode", "seq": 5}).violations == [livechecks.OUT_OF_ORDER]
    assert checker.check({"type": "mode", "seq": 4}).violations == [livechecks.OUT_OF_ORDER]
    assert checker.check({"type": "mode", "seq": 6}).violations == []
    assert checker.out_of_order == 2


def test_a_forwarded_message_without_seq_is_out_of_order_but_acks_and_errors_have_none():
    checker = livechecks.StreamChecker()
    assert checker.check({"type": "joined", "userId": "a"}).violations == [livechecks.OUT_OF_ORDER]
    assert checker.check({"type": "error", "errorMessage": "x"}).violations == []


def test_the_first_events_must_hold_a_full_snapshot():
    checker = livechecks.StreamChecker()
    checked = run(checker, events(1, 1), events(2, 2))
    assert checked[0].violations == [livechecks.NO_SNAPSHOT]
    assert checked[1].violations == []
    assert checker.missing_snapshots == 1


def test_after_a_resync_seq_and_cseq_restart_from_the_snapshot():
    checker = livechecks.StreamChecker()
    run(checker, events(10, 4, snapshot=True), events(11, 5), events(12, 6))
    checked = run(
        checker,
        {"type": "resync"},
        events(7, 3, snapshot=True),  # lower seq and cseq: the last full snapshot
        events(8, 4),
    )
    assert [item.violations for item in checked] == [[], [], []]
    assert checker.resyncs == 1
    assert checker.check(events(9, 6)).violations == [livechecks.LOST]


def test_after_a_resync_the_snapshot_must_come_first():
    checker = livechecks.StreamChecker()
    run(checker, events(1, 1, snapshot=True), {"type": "resync"})
    assert checker.check(events(1, 2)).violations == [livechecks.NO_SNAPSHOT]


def test_messages_up_to_the_welcome_seq_are_history():
    checker = livechecks.StreamChecker()
    checked = run(checker, {"type": "welcome", "seq": 6}, events(5, 1, snapshot=True), events(7, 2))
    assert [item.history for item in checked[1:]] == [True, False]


def test_a_reconnection_resumes_the_same_checks():
    checker = livechecks.StreamChecker()
    run(checker, {"type": "welcome", "seq": 0}, events(1, 1, snapshot=True), events(2, 2))
    checked = run(checker, {"type": "welcome", "seq": 4}, events(3, 3), events(4, 4))
    assert [item.violations for item in checked] == [[], [], []]
    assert checker.check(events(5, 3)).violations == [livechecks.DUPLICATE]


@pytest.mark.parametrize(
    ("acked", "reached", "missing"),
    [
        ([(1, 0.0), (2, 1.0), (3, 2.0)], 3, 0),
        ([(1, 0.0), (2, 1.0), (3, 2.0)], 1, 2),
        ([(1, 0.0), (2, 1.0), (3, 9.0)], 1, 1),  # cseq 3 acked too recently to judge
        ([(1, 0.0)], None, 1),
        ([(5, 9.0)], None, 0),
        ([], None, 0),
        ([(4, 0.0)], 7, 0),  # a resync moved the agent past it
    ],
)
def test_acknowledged_batches_never_delivered_are_counted_at_the_end(acked, reached, missing):
    assert livechecks.undelivered(acked, reached, before=5.0) == missing


# ---------------------------------------------------------------------------------------------
# the live SLOs


def live(**changes):
    values = {"delivered": 5000, "delivery_p99_ms": 40.0, "requests": 6000, **changes}
    return slo.LiveMeasured(**values)


def test_a_clean_live_run_passes():
    verdict = slo.evaluate_live(live(), slo.LiveThresholds())
    assert verdict.passed
    assert verdict.exit_code() == 0
    assert verdict.summary().startswith("SLO passed: delivery p99 40 ms (max 200 ms)")


@pytest.mark.parametrize(
    ("changes", "violation"),
    [
        ({"delivered": 0}, "no message was delivered to an agent"),
        ({"delivery_p99_ms": 201.0}, "delivery p99 201 ms > 200 ms"),
        ({"lost": 1}, "lost 1 > 0"),
        ({"duplicated": 2}, "duplicated 2 > 0"),
        ({"out_of_order": 3}, "out of order 3 > 0"),
        ({"missing_snapshots": 1}, "missing snapshots 1 > 0"),
        ({"join_failures": 1}, "join failures 1 > 0"),
        ({"consent_timeouts": 1}, "consent timeouts 1 > 0"),
        ({"failures": 61}, "failure ratio 0.0102 > 0.01"),
        ({"exceptions": 1}, "1 unhandled exception(s) in the scenarios"),
    ],
)
def test_each_missed_live_objective_is_named_and_fails_the_run(changes, violation):
    verdict = slo.evaluate_live(live(**changes), slo.LiveThresholds())
    assert verdict.violations == [violation]
    assert verdict.exit_code(on_failure=3) == 3
    assert verdict.summary().startswith(f"SLO MISSED ({violation})")


def test_live_thresholds_are_configurable():
    lenient = slo.LiveThresholds(delivery_p99_ms=5000.0, max_lost=3, max_consent_timeouts=1)
    measured = live(delivery_p99_ms=900.0, lost=3, consent_timeouts=1)
    assert slo.evaluate_live(measured, lenient).passed


def test_the_live_outcome_file_says_it_is_live(tmp_path):
    verdict = slo.evaluate_live(live(lost=2), slo.LiveThresholds())
    slo.write_outcome(tmp_path / "outcome.json", verdict, {"lost": 2, "delivered": 5000})
    written = json.loads((tmp_path / "outcome.json").read_text())
    assert written["kind"] == "live"
    assert written["passed"] is False
    assert written["measured"]["lost"] == 2
    assert written["counters"] == {"lost": 2, "delivered": 5000}


# ---------------------------------------------------------------------------------------------
# the Locust side: the verdict from Locust's statistics, the channel URL


@pytest.fixture
def scenario():
    return import_loadtest("live")


@pytest.fixture
def environment(scenario):
    from locust.env import Environment

    scenario.TALLY.clear()
    yield Environment(
        user_classes=[scenario.LiveCustomer, scenario.LiveAgent],
        parsed_options=argparse.Namespace(
            slo_delivery_p99_ms=200.0, exit_code_on_error=1, outcome_file=None
        ),
    )
    scenario.TALLY.clear()


def deliver(environment, count, latency_ms):
    # What the runner's request listener does with each message the agents report.
    for _ in range(count):
        environment.stats.log_request("WS", "agent: events", latency_ms, 500)


def test_the_verdict_reads_the_agents_latency_and_the_counters(scenario, environment):
    deliver(environment, 1000, 30)
    scenario.TALLY.update({"delivered": 1000})
    scenario.check_slos(environment)
    assert environment.process_exit_code == 0
    measured = scenario.measure(environment)
    assert measured.delivered == 1000
    assert measured.delivery_p99_ms == 30


@pytest.mark.parametrize(
    ("latency_ms", "counters"),
    [(450, {}), (30, {"lost": 1}), (30, {"undelivered": 2}), (30, {"duplicated": 1})],
)
def test_a_slow_or_lossy_run_exits_1(scenario, environment, latency_ms, counters):
    deliver(environment, 1000, latency_ms)
    scenario.TALLY.update({"delivered": 1000, **counters})
    scenario.check_slos(environment)
    assert environment.process_exit_code == 1


def test_undelivered_batches_are_added_to_the_lost(scenario, environment):
    scenario.TALLY.update({"delivered": 10, "lost": 1, "undelivered": 2})
    assert scenario.measure(environment).lost == 3


@pytest.mark.parametrize(
    ("server", "url"),
    [
        (
            "http://127.0.0.1:8700/node-1/cobrowse",
            "ws://127.0.0.1:8700/node-1/cobrowse/rest/live/users/T/channel",
        ),
        (
            "https://cobrowse.example.com/node-2/cobrowse/",
            "wss://cobrowse.example.com/node-2/cobrowse/rest/live/users/T/channel",
        ),
    ],
)
def test_the_channel_opens_under_the_session_server_url(scenario, server, url):
    assert scenario.channel_url(server, "T") == url


def test_a_replay_may_start_at_any_full_snapshot_and_keeps_the_pace_from_there():
    recording = livechecks.Recording.from_batches([*BATCHES, {"t": 4000, "events": SNAPSHOT}])
    assert recording.snapshots == (0, 3)
    replay = livechecks.Replay(recording, speed=2.0)
    replay.restart(50.0, 3)
    assert [(replay.due_s(), replay.take()) for _ in range(3)] == [
        (50.0, 3),
        (replay.loop_start_s, 0),  # then the next loop, from the first batch
        (replay.loop_start_s + 0.25, 1),
    ]
    assert replay.loop_start_s == pytest.approx(50.0 - 1.5 + recording.loop_ms / 2000)
    with pytest.raises(ValueError, match="no full snapshot"):
        replay.restart(0.0, 1)


def test_the_fixture_has_five_snapshots_to_start_from():
    assert len(livechecks.Recording.load().snapshots) == 5


def test_control_messages_replayed_after_a_resync_are_history_until_the_snapshot():
    checker = livechecks.StreamChecker()
    run(checker, {"type": "welcome", "seq": 1}, events(5, 1, snapshot=True), events(6, 2))
    checked = run(
        checker,
        {"type": "resync"},
        {"type": "joined", "seq": 3, "userId": "a"},  # replayed from the agent's joining
        events(9, 5, snapshot=True),
        {"type": "mode", "seq": 10, "mode": "pointer"},
    )
    assert [item.history for item in checked[1:]] == [True, False, False]
    assert [item.violations for item in checked] == [[]] * 4
