"""The cluster file: defaults, environment overrides, and mistakes named by section and option."""

from __future__ import annotations

import pytest

from cobrowse.cli import main
from cobrowse.config.loader import ConfigError, env_name, load_cluster, parse_cluster
from tests.conftest import BASE_CLUSTER
from tests.helpers import REPO


def test_example_cluster_file_is_valid(tmp_path):
    config = load_cluster(REPO / "deploy" / "cluster.ini", environ={}, cwd=tmp_path)
    assert [node.name for node in config.nodes] == ["node-1", "node-2", "node-3"]
    assert config.context_path == "/cobrowse"
    assert config.node("node-1").data_dir == tmp_path / "data" / "node-1"
    assert config.node("node-1").server_url == "http://127.0.0.1:8700/node-1/cobrowse"


def test_defaults(tmp_path):
    config = parse_cluster("[node:a]\nbind = 127.0.0.1:9001\n", environ={}, cwd=tmp_path)
    node = config.node("a")
    assert node.data_dir == tmp_path / "data" / "a"
    assert node.server_url is None
    assert node.workers == 2
    assert config.session.inactivity_timeout == 60
    assert config.router.check_interval == 1
    assert config.router.check_fall == 2
    assert config.router.bind == "127.0.0.1:8700"
    assert config.security.rate_limits.quarantine_delay == 30


@pytest.mark.parametrize(
    ("section", "option", "value", "attribute"),
    [
        ("cross-origin", "allowedOrigins", "*", lambda c: c.origins.rules[0].pattern),
        ("node:node-1", "workers", "7", lambda c: c.node("node-1").workers),
        ("session", "inactivityTimeout", "5", lambda c: c.session.inactivity_timeout),
        (
            "security",
            "rateLimit.sessions.create",
            "3",
            lambda c: c.security.rate_limits.limit_for("sessions.create"),
        ),
    ],
)
def test_environment_overrides_options(section, option, value, attribute):
    config = parse_cluster(BASE_CLUSTER, environ={env_name(section, option): value})
    assert str(attribute(config)) in (value, f"{value}.0")


def test_env_names_are_documented_shape():
    assert env_name("cross-origin", "allowedOrigins") == "COBROWSE_CROSS_ORIGIN_ALLOWEDORIGINS"
    assert env_name("node:node-1", "workers") == "COBROWSE_NODE_NODE_1_WORKERS"


def test_every_mistake_is_named_by_section_and_option():
    text = """
[cluster]
url = ftp://nowhere
colour = blue
[cross-origin]
allowedOrigins = http://ok, http://bad (sessions.nope)
[session]
inactivityTimeout = -1
[surprise]
[node:a]
bind = nonsense
workers = 0
ringEpoch = 12
[node:b]
[node:bad name!]
bind = 127.0.0.1:1
"""
    with pytest.raises(ConfigError) as caught:
        parse_cluster(text, environ={})
    found = {(problem.section, problem.option) for problem in caught.value.problems}
    assert found >= {
        ("cluster", "url"),
        ("cluster", "colour"),
        ("cross-origin", "allowedOrigins"),
        ("session", "inactivityTimeout"),
        ("surprise", None),
        ("node:a", "bind"),
        ("node:a", "workers"),
        ("node:a", "ringEpoch"),
        ("node:b", "bind"),
        ("node:bad name!", None),
    }


def test_duplicate_binds_are_refused():
    text = "[node:a]\nbind = 127.0.0.1:9001\n[node:b]\nbind = 127.0.0.1:9001\n"
    with pytest.raises(ConfigError, match=r"\[node:b\] bind"):
        parse_cluster(text, environ={})


def test_a_cluster_needs_a_node():
    with pytest.raises(ConfigError, match="at least one"):
        parse_cluster("[cluster]\nurl = http://127.0.0.1:8700/cobrowse\n", environ={})


def test_check_config_command(tmp_path, capsys):
    good = tmp_path / "good.ini"
    good.write_text(BASE_CLUSTER)
    assert main(["check-config", str(good)]) == 0
    assert "3 node(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.ini"
    bad.write_text(BASE_CLUSTER + "\n[node:node-4]\nworkers = many\n")
    with pytest.raises(SystemExit) as exited:
        main(["check-config", str(bad)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "[node:node-4] workers" in err
    assert "[node:node-4] bind" in err


@pytest.mark.parametrize("name", ["lb", "health", "cobrowse"])
def test_node_names_that_would_shadow_router_paths_are_refused(name):
    with pytest.raises(ConfigError, match="taken by a path"):
        parse_cluster(f"[node:{name}]\nbind = 127.0.0.1:9001\n", environ={})


@pytest.mark.parametrize("compression", ["message", "context", "off"])
def test_realtime_compression_reaches_the_nodes_server(compression, tmp_path):
    text = f"[realtime]\ncompression = {compression}\n[node:a]\nbind = 127.0.0.1:9001\n"
    config = parse_cluster(text, environ={}, cwd=tmp_path)
    assert config.realtime.compression == compression


def test_realtime_compression_defaults_to_per_message_and_refuses_others(tmp_path):
    base = "[node:a]\nbind = 127.0.0.1:9001\n"
    assert parse_cluster(base, environ={}, cwd=tmp_path).realtime.compression == "message"
    with pytest.raises(ConfigError) as caught:
        parse_cluster("[realtime]\ncompression = gzip\n" + base, environ={}, cwd=tmp_path)
    assert {(problem.section, problem.option) for problem in caught.value.problems} == {
        ("realtime", "compression")
    }
