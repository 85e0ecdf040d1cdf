"""`cobrowse haproxy-config`: the generated haproxy.cfg, checked by the real HAProxy."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cobrowse.cli import main
from cobrowse.config.loader import ConfigError, parse_cluster
from cobrowse.ops.lbconfig.haproxy import render_haproxy
from cobrowse.ops.lbconfig.haproxy_stats import parse_stat
from tests.conftest import BASE_CLUSTER, cluster_from
from tests.helpers import REPO

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
REGENERATE = "cobrowse haproxy-config --config deploy/cluster.ini --output deploy/haproxy.cfg"

CLUSTER = (
    BASE_CLUSTER
    + """
[node:node-4]
bind = 127.0.0.1:8704
weight = 3
backup = true
"""
)


@pytest.fixture
def generated(tmp_path) -> str:
    config = cluster_from(
        CLUSTER,
        tmp_path,
        lb={
            "checkInterval": "0.5",
            "checkFall": "3",
            "checkRise": "4",
            "checkTimeout": "0.25",
            "connectTimeout": "0.75",
            "serverTimeout": "12",
            "clientTimeout": "9",
            "tunnelTimeout": "45",
            "statsBind": "127.0.0.1:9404",
        },
    )
    return render_haproxy(config, command="test", stats_socket=str(tmp_path / "h.sock"))


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_cookie_stickiness_is_passive(generated):
    lines = lines_of(generated)
    # No insert, rewrite or prefix: HAProxy only matches the cookie that the nodes set.
    assert [line for line in lines if line.startswith("cookie ")] == ["cookie gcbSessionServer"]
    assert "server node-1 127.0.0.1:8701 cookie node-1 weight 1" in lines
    assert "server node-4 127.0.0.1:8704 cookie node-4 weight 3 backup" in lines


def test_health_checks_use_the_cluster_file_timings(generated):
    lines = lines_of(generated)
    assert "option httpchk" in lines
    assert "http-check send meth GET uri /cobrowse/health" in lines
    assert "http-check expect status 200" in lines
    assert "http-check disable-on-404" in lines
    assert (
        "default-server check inter 500ms fall 3 rise 4 on-marked-down shutdown-sessions" in lines
    )
    assert "timeout check 250ms" in lines
    assert "timeout connect 750ms" in lines
    assert "timeout server 12000ms" in lines
    assert "timeout client 9000ms" in lines
    assert "retries 2" in lines
    assert "option redispatch 1" in lines


def test_url_prefixes_header_and_forwarding(generated):
    lines = lines_of(generated)
    assert "acl url_names_node path_reg ^/(node-1|node-2|node-3|node-4)/" in lines
    assert r"http-request replace-path ^/[^/]+(/.*)$ \1 if url_names_node" in lines
    assert (
        "use_backend only_node-2 if url_node-2 !create or url_node-2 node-2_takes_sessions"
    ) in lines
    assert (
        "server node-2 127.0.0.1:8702 track all_nodes/node-2 on-marked-down shutdown-sessions"
    ) in lines
    assert "use-server node-3 if header_node-3 !cookie_names_node !create" in lines
    assert "option forwardfor" in lines
    assert "acl from_trusted_proxy src 127.0.0.1 ::1" in lines
    assert "http-request set-header X-Forwarded-Proto https if { ssl_fc }" in lines


def test_websockets_tunnel_timeouts_and_closing(generated):
    lines = lines_of(generated)
    defaults = lines_of(generated[generated.index("defaults") : generated.index("frontend")])
    assert "timeout tunnel 45000ms" in defaults  # [lb] tunnelTimeout
    assert "timeout client-fin 5000ms" in defaults
    assert "timeout server-fin 5000ms" in defaults
    glob = lines_of(generated[generated.index("global") : generated.index("defaults")])
    assert "hard-stop-after 12000ms" in glob  # [lb] serverTimeout: old processes on reload
    # Tunnels of a server marked down are closed, under the prefix backends too (`track`).
    servers = [line for line in lines if line.startswith("server ")]
    tracking = [line for line in servers if " track " in line]
    assert len(tracking) == 4
    assert all(line.endswith("on-marked-down shutdown-sessions") for line in tracking)


def test_stats_socket_and_page(generated, tmp_path):
    lines = lines_of(generated)
    assert f"stats socket {tmp_path / 'h.sock'} mode 600 level admin" in lines
    stats = generated[generated.index("frontend stats") :]
    assert "bind 127.0.0.1:9404" in stats
    assert "stats uri /stats" in stats


def test_haproxy_accepts_the_generated_file(generated, tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(generated)
    check = subprocess.run(
        [HAPROXY, "-c", "-f", str(path)], check=False, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_deploy_example_is_the_generated_file(tmp_path, monkeypatch):
    # Run the command named in the file's header, on a copy of deploy/, and compare bytes.
    for name in list(os.environ):
        if name.startswith("COBROWSE_"):
            monkeypatch.delenv(name)
    (tmp_path / "deploy").mkdir()
    shutil.copy(REPO / "deploy" / "cluster.ini", tmp_path / "deploy" / "cluster.ini")
    monkeypatch.chdir(tmp_path)
    assert main(REGENERATE.split()[1:]) == 0
    expected = (tmp_path / "deploy" / "haproxy.cfg").read_bytes()
    assert (REPO / "deploy" / "haproxy.cfg").read_bytes() == expected, (
        f"deploy/haproxy.cfg is stale: run `{REGENERATE}`"
    )
    assert f"#     {REGENERATE}\n" in expected.decode()
    assert "user haproxy" in expected.decode()
    assert "stats socket /run/haproxy/admin.sock" in expected.decode()


def test_the_command_writes_to_standard_output(tmp_path, capsys):
    config = tmp_path / "cluster.ini"
    config.write_text(BASE_CLUSTER)
    assert main(["haproxy-config", "--config", str(config), "--user", ""]) == 0
    text = capsys.readouterr().out
    assert f"#     cobrowse haproxy-config --config {config} --user ''\n" in text
    assert "\n    user " not in text
    assert text.count("\nbackend only_") == 3


def test_stats_bind_is_an_lb_option():
    assert parse_cluster(BASE_CLUSTER).router.stats_bind == "127.0.0.1:8404"
    config = parse_cluster(BASE_CLUSTER + "\n[lb]\nstatsBind = 127.0.0.1:9999\n")
    assert config.router.stats_bind == "127.0.0.1:9999"
    with pytest.raises(ConfigError, match=r"\[lb\] statsBind"):
        parse_cluster(BASE_CLUSTER + "\n[lb]\nstatsBind = nowhere\n")


def test_show_stat_csv_is_read_per_server():
    text = (
        "# pxname,svname,qcur,status,check_status\n"
        "cobrowse,FRONTEND,,OPEN,\n"
        "all_nodes,node-1,0,UP,L7OK\n"
        "all_nodes,node-2,0,NOLB,L7OKC\n"
        "all_nodes,node-3,0,UP 1/2,L4CON\n"
        "all_nodes,BACKEND,0,UP,\n"
        "only_node-1,node-1,0,UP,\n"
    )
    states = parse_stat(text)
    assert {name: state.status for name, state in states.items()} == {
        "node-1": "UP",
        "node-2": "NOLB",
        "node-3": "UP 1/2",
    }
    assert [name for name, state in states.items() if state.up] == ["node-1"]


# The shared store: a prefix whose node is down goes to another node.


def shared(tmp_path, text: str = CLUSTER) -> str:
    config = cluster_from(text, tmp_path, store={"backend": "redis"})
    assert config.store.shared
    return render_haproxy(config, command="test", stats_socket=str(tmp_path / "h.sock"))


def test_with_the_shared_store_prefixes_fail_over_to_the_other_nodes(tmp_path):
    text = shared(tmp_path)
    lines = lines_of(text)
    assert (
        "use_backend failover_node-2 if url_node-2 !create or url_node-2 node-2_takes_sessions"
    ) in lines
    assert (
        "use_backend only_node-2 if url_node-2 !create or url_node-2 node-2_takes_sessions"
        not in lines
    )
    # Whether a node takes new sessions still comes from only_<node> (it alone).
    assert "acl node-2_takes_sessions nbsrv(only_node-2) gt 0" in lines
    block = text[text.index("\nbackend failover_node-2") + 1 :]
    block = block[: block.index("\n\n")]
    servers = [line for line in lines_of(block) if line.startswith("server ")]
    # node-2 first and preferred (use-server, also while it drains), then every other node;
    # a backup node stays a backup. Each follows all_nodes' checks.
    assert servers == [
        "server node-2 127.0.0.1:8702 weight 1 track all_nodes/node-2 "
        "on-marked-down shutdown-sessions",
        "server node-1 127.0.0.1:8701 weight 1 track all_nodes/node-1 "
        "on-marked-down shutdown-sessions",
        "server node-3 127.0.0.1:8703 weight 1 track all_nodes/node-3 "
        "on-marked-down shutdown-sessions",
        "server node-4 127.0.0.1:8704 weight 3 backup track all_nodes/node-4 "
        "on-marked-down shutdown-sessions",
    ]
    block_lines = lines_of(block)
    for line in ("use-server node-2 if TRUE", "retries 2", "option redispatch 1"):
        assert line in block_lines
    assert text.count("\nbackend failover_") == 4
    assert "any node serves any session" in text


def test_without_the_shared_store_prefixes_stay_on_their_node(generated):
    assert "failover_" not in generated
    assert "any node serves any session" not in generated
    only = generated[generated.index("\nbackend only_node-2") + 1 :]
    backend = only[: only.index("\n\n")]
    assert "use-server node-2 if TRUE" in backend
    assert "redispatch" not in backend
    # Only a kept-alive connection closed under the request is retried (on node-2 again); a
    # refused connection is not: a dead node answers a 503 naming it at once.
    assert "retry-on empty-response" in backend
    assert "conn-failure" not in backend


def test_haproxy_accepts_the_shared_store_file(tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(shared(tmp_path))
    check = subprocess.run(
        [HAPROXY, "-c", "-f", str(path)], check=False, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
