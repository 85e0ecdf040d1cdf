"""`cobrowse loadtest`: its options, the cluster file it writes, the Locust command it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import cobrowse.loadtest.runner
from cobrowse.cli import build_parser, main
from cobrowse.config.loader import load_cluster
from cobrowse.loadtest.runner import (
    LIVE_CONF,
    LIVE_LOCUSTFILE,
    LoadTestOptions,
    locust_argv,
    results_dir,
    timespan_s,
    write_cluster_file,
)


@pytest.fixture
def started(monkeypatch):
    """Run `cobrowse loadtest …` without running it: return the options it would use."""
    captured: list[LoadTestOptions] = []

    def fake_run(options: LoadTestOptions) -> int:
        captured.append(options)
        return 7

    monkeypatch.setattr(cobrowse.loadtest.runner, "run_loadtest", fake_run)
    return captured


def test_defaults(started):
    assert main(["loadtest"]) == 7  # Locust's exit code is the command's
    assert started == [LoadTestOptions()]
    assert started[0].lb == "router"
    assert started[0].results == Path("results")


def test_every_option_reaches_the_run_and_arguments_after_dashes_go_to_locust(started):
    main(
        [
            "loadtest",
            "--nodes",
            "2",
            "--users",
            "80",
            "--spawn-rate",
            "20",
            "--duration",
            "2m",
            "--lb",
            "haproxy",
            "--results",
            "out",
            "--shape",
            "spike",
            "--workers",
            "3",
            "--",
            "--customer-weight",
            "3",
            "--slo-p95-ms",
            "200",
        ]
    )
    assert started == [
        LoadTestOptions(
            nodes=2,
            users=80,
            spawn_rate=20.0,
            duration="2m",
            lb="haproxy",
            results=Path("out"),
            shape="spike",
            workers=3,
            locust_args=("--customer-weight", "3", "--slo-p95-ms", "200"),
        )
    ]


@pytest.mark.parametrize(
    "argv", [["--duration", "soon"], ["--duration", ""], ["--lb", "nginx"], ["--shape", "square"]]
)
def test_bad_options_are_refused_before_anything_starts(argv, started, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["loadtest", *argv])
    assert exit_info.value.code == 2
    assert started == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("60s", 60), ("2m", 120), ("1h30m", 5400), ("1m5s", 65), ("0s", 0)],
)
def test_durations_read_as_locust_reads_them(text, seconds):
    assert timespan_s(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "1d", "60 s", "-5", "1.5m"])
def test_other_durations_are_refused(text):
    with pytest.raises(ValueError, match="invalid duration"):
        timespan_s(text)


def test_each_run_gets_its_own_results_folder(tmp_path):
    moment = datetime(2026, 11, 22, 11, 40, 5, tzinfo=UTC)
    first = results_dir(tmp_path / "results", moment)
    second = results_dir(tmp_path / "results", moment)
    assert first.name == "20261122-114005"
    assert second.name == "20261122-114005-1"
    assert first.is_dir()
    assert second.is_dir()


def test_the_cluster_file_uses_free_ports_and_keeps_data_in_the_results(tmp_path):
    path = write_cluster_file(tmp_path, nodes=3, workers=1)
    config = load_cluster(path)
    assert [node.name for node in config.nodes] == ["node-1", "node-2", "node-3"]
    binds = [node.bind for node in config.nodes] + [config.router.bind, config.router.stats_bind]
    assert len(set(binds)) == 5
    assert all(bind.startswith("127.0.0.1:") for bind in binds)
    assert {node.workers for node in config.nodes} == {1}
    assert all(node.data_dir.is_relative_to(tmp_path.resolve()) for node in config.nodes)
    assert "allowedOrigins = http://localhost:8080" in path.read_text()  # the scenarios' Origin


def test_locust_runs_headless_with_csv_html_and_the_outcome_in_the_results(tmp_path):
    options = LoadTestOptions(users=30, spawn_rate=5.0, duration="15s", locust_args=("-L", "DEBUG"))
    argv = locust_argv(options, "http://127.0.0.1:9000", tmp_path)
    assert argv[1:3] == ["-m", "locust"]
    joined = " ".join(argv)
    assert f"--config {options.locust_config}" in joined
    assert f"-f {options.locustfile} --headless -H http://127.0.0.1:9000" in joined
    assert "-u 30 -r 5.0 -t 15s" in joined
    assert f"--csv {tmp_path / 'stats'} --csv-full-history" in joined
    assert f"--html {tmp_path / 'report.html'}" in joined
    assert "--only-summary" in argv
    assert f"--outcome-file {tmp_path / 'outcome.json'}" in joined
    assert argv[-2:] == ["-L", "DEBUG"]  # last, so that they win


def test_without_a_locust_conf_none_is_passed(tmp_path):
    options = LoadTestOptions(locust_config=tmp_path / "missing.conf")
    assert "--config" not in locust_argv(options, "http://127.0.0.1:9000", tmp_path)


# Live sessions (`--live`) and idle sessions (`--idle-sessions`).


def test_live_counts_pairs_twice_in_locusts_users_and_spawn_rate(started):
    main(["loadtest", "--live", "--pairs", "40", "--spawn-rate", "5", "--speed", "2"])
    [options] = started
    assert (options.live, options.users, options.spawn_rate, options.speed) == (True, 80, 10.0, 2.0)


def test_live_defaults_to_25_pairs(started):
    main(["loadtest", "--live"])
    assert (started[0].users, started[0].spawn_rate, started[0].speed) == (50, 20.0, 1.0)


def test_without_live_pairs_and_speed_change_nothing(started):
    main(["loadtest", "--pairs", "40", "--users", "30"])
    assert (started[0].live, started[0].users) == (False, 30)


@pytest.mark.parametrize("command", ["loadtest", "soak"])
def test_users_with_live_is_refused_rather_than_ignored(command, started, monkeypatch):
    import cobrowse.loadtest.soak

    monkeypatch.setattr(cobrowse.loadtest.soak, "run_soak", started.append)
    with pytest.raises(SystemExit) as stopped:
        main([command, "--live", "--users", "30"])
    assert "--pairs" in str(stopped.value.code)
    assert started == []


def test_rest_users_default_to_50(started):
    main(["loadtest"])
    assert (started[0].live, started[0].users) == (False, 50)


@pytest.mark.parametrize("argv", [["--pairs", "0"], ["--speed", "-1"], ["--idle-sessions", "x"]])
def test_bad_live_options_are_refused(argv, started, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["loadtest", "--live", *argv])
    assert started == []


def test_live_runs_the_live_scenarios_with_their_config_and_speed(tmp_path):
    options = LoadTestOptions(live=True, speed=2.5, lb="haproxy")
    argv = locust_argv(options, "http://127.0.0.1:9000", tmp_path)
    joined = " ".join(argv)
    assert f"--config {LIVE_CONF}" in joined
    assert f"-f {LIVE_LOCUSTFILE} --headless" in joined
    assert "--live-speed 2.5" in joined
    assert "--follow-redirects" in argv  # the join's 307 behind HAProxy
    assert f"--outcome-file {tmp_path / 'outcome.json'}" in joined


def test_a_locustfile_given_explicitly_wins_over_live(tmp_path):
    mine = tmp_path / "mine.py"
    options = LoadTestOptions(live=True, locustfile=mine, locust_config=None)
    assert options.scenarios == (mine, None)


def test_the_cluster_file_lets_the_agents_of_one_machine_join(tmp_path):
    path = write_cluster_file(tmp_path, nodes=1, workers=1)
    assert load_cluster(path).security.rate_limits.limit_for("sessions.join") == 0


def test_idle_sessions_run_instead_of_locust(monkeypatch):
    import cobrowse.loadtest.idle

    captured = []
    monkeypatch.setattr(
        cobrowse.loadtest.idle, "run_idle", lambda options: captured.append(options) or 0
    )
    assert main(["loadtest", "--idle-sessions", "300", "--workers", "4", "--results", "r"]) == 0
    assert captured == [
        cobrowse.loadtest.idle.IdleOptions(sessions=300, workers=4, results=Path("r"))
    ]


def test_soak_live(monkeypatch):
    import cobrowse.loadtest.soak

    captured = []
    monkeypatch.setattr(
        cobrowse.loadtest.soak, "run_soak", lambda options: captured.append(options) or 0
    )
    main(["soak", "--live", "--pairs", "15"])
    [options] = captured
    assert (options.live, options.users, options.duration) == (True, 30, "10m")
