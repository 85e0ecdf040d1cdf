"""deploy/: gunicorn.conf.py loads the benchmarked settings; the systemd units run real commands."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cobrowse.cli import build_parser
from cobrowse.commands import node as node_command
from cobrowse.commands import router as router_command
from cobrowse.config.loader import CONFIG_ENV, NODE_ENV, load_cluster
from cobrowse.ops.node import gunicorn_options
from tests.helpers import COBROWSE, REPO, write_cluster

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
UNITS = REPO / "deploy" / "systemd"
INSTALLED_COBROWSE = "/opt/cobrowse/.venv/bin/cobrowse"
INSTALLED_CLUSTER = "/etc/cobrowse/cluster.ini"


def print_config(config: Path | None, node: str | None) -> subprocess.CompletedProcess[str]:
    """Run Gunicorn on deploy/gunicorn.conf.py with --print-config (it also loads the app)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("COBROWSE_")}
    if config is not None and node is not None:
        env |= {CONFIG_ENV: str(config), NODE_ENV: node}
    return subprocess.run(
        [
            GUNICORN,
            "--print-config",
            "-c",
            str(REPO / "deploy" / "gunicorn.conf.py"),
            "cobrowse.web.app:get_app()",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def test_gunicorn_conf_loads_the_benchmarked_settings(tmp_path):
    config = write_cluster(tmp_path, 2, workers=3)
    result = print_config(config, "node-2")
    assert result.returncode == 0, result.stdout + result.stderr
    printed = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            printed[name.strip()] = value.strip()
    expected = gunicorn_options(load_cluster(config).node_settings("node-2"))
    for name in (
        "workers",
        "worker_class",
        "keepalive",
        "timeout",
        "graceful_timeout",
        "max_requests",
    ):
        assert printed[name] == str(expected[name]), name
    assert printed["workers"] == "3"
    assert printed["bind"] == repr(expected["bind"])
    assert printed["proc_name"] == "cobrowse-node:node-2"
    assert (tmp_path / "data" / "node-2").is_dir()


def test_gunicorn_conf_names_what_is_missing():
    result = print_config(None, None)
    assert result.returncode != 0
    assert CONFIG_ENV in result.stderr


def read_unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # keep systemd's CamelCase keys
    unit.read(UNITS / name)
    return unit


def local_argv(command: str, config: Path, instance: str = "node-1") -> list[str]:
    """Return a unit's command with the installed paths replaced by this checkout's."""
    argv = shlex.split(command.replace("%i", instance))
    assert argv[0] == INSTALLED_COBROWSE
    return [COBROWSE, *(str(config) if arg == INSTALLED_CLUSTER else arg for arg in argv[1:])]


@pytest.mark.parametrize(
    ("unit_name", "handler"),
    [("cobrowse-node@.service", node_command.run), ("cobrowse-lb.service", router_command.run)],
)
def test_units_run_commands_and_options_that_exist(tmp_path, unit_name, handler):
    config = write_cluster(tmp_path, 2)
    service = read_unit(unit_name)["Service"]
    argv = local_argv(service["ExecStart"], config)

    args = build_parser().parse_args(argv[1:])
    assert args.handler is handler
    assert Path(args.config) == config
    if unit_name.startswith("cobrowse-node@"):
        assert load_cluster(config).node(args.name).name == "node-1"  # %i is a node's name
    helped = subprocess.run(
        [*argv, "--help"], check=False, capture_output=True, text=True, timeout=30
    )
    assert helped.returncode == 0, helped.stderr
    assert "--config" in helped.stdout

    # Graceful reload and stop.
    reload_argv = shlex.split(service["ExecReload"])
    assert reload_argv == ["/bin/kill", "-HUP", "$MAINPID"]
    assert os.access(reload_argv[0], os.X_OK)
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert service["User"] == "cobrowse"
    assert service["NoNewPrivileges"] == "yes"


def test_the_node_unit_outwaits_gunicorns_graceful_stop(tmp_path):
    service = read_unit("cobrowse-node@.service")["Service"]
    settings = load_cluster(write_cluster(tmp_path, 1)).node_settings("node-1")
    assert int(service["TimeoutStopSec"]) > gunicorn_options(settings)["graceful_timeout"]
    assert service["KillMode"] == "mixed"  # SIGTERM to the master only: it stops its workers


@pytest.mark.parametrize(
    ("unit_name", "installed_as"),
    [
        ("cobrowse-node@.service", "cobrowse-node@node-1.service"),
        ("cobrowse-lb.service", "cobrowse-lb.service"),
    ],
)
def test_systemd_accepts_the_units(tmp_path, unit_name, installed_as):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    config = write_cluster(tmp_path, 1)
    text = (UNITS / unit_name).read_text()
    # Point the unit at this checkout, so that systemd can also check that the command exists.
    text = text.replace(INSTALLED_COBROWSE, COBROWSE).replace(INSTALLED_CLUSTER, str(config))
    unit = tmp_path / installed_as
    unit.write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60
    )
    about_unit = [line for line in result.stderr.splitlines() if installed_as in line]
    assert result.returncode == 0, result.stderr
    assert about_unit == []
