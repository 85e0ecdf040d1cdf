"""`cobrowse loadtest`: its options, the cluster file it writes, the Locust command it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import cobrowse.loadtest.runner
from cobrowse.cli import build_parser, main
from cobrowse.config.loader import load_cluster
from cobrowse.loadtest.runner import (
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
