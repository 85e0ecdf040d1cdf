"""`cobrowse nginx-config`: the generated nginx.conf, checked by the real nginx."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cobrowse.cli import main
from cobrowse.ops.lbconfig.nginx import render_nginx
from tests.conftest import BASE_CLUSTER, cluster_from
from tests.helpers import REPO

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REGENERATE = "cobrowse nginx-config --config deploy/cluster.ini --output deploy/nginx.conf"


def render(tmp_path, drained: frozenset[str] = frozenset()) -> str:
    config = cluster_from(
        BASE_CLUSTER,
        tmp_path,
        lb={
            "checkInterval": "0.5",
            "checkFall": "3",
            "checkRise": "4",
            "connectTimeout": "0.75",
            "tunnelTimeout": "45",
        },
    )
    return render_nginx(config, command="test", run_dir=str(tmp_path), drained=drained)


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_cookie_then_header_choose_the_sticky_upstream(tmp_path):
    text = render(tmp_path)
    cookie_map = text[text.index("map $cookie_gcbSessionServer") :]
    cookie_map = cookie_map[: cookie_map.index("}")]
    assert "default $cobrowse_header_upstream;" in cookie_map
    assert "node-2 cobrowse_sticky_node-2;" in cookie_map
    header_map = text[text.index("map $http_gcbsessionserver") :]
    assert "default cobrowse_spread;" in header_map[: header_map.index("}")]
    sticky = text[text.index("upstream cobrowse_sticky_node-2 {") :]
    sticky = lines_of(sticky[: sticky.index("}")])
    assert sticky[1:4] == [
        "server 127.0.0.1:8702 max_fails=3 fail_timeout=2s;",
        "server 127.0.0.1:8701 max_fails=3 fail_timeout=2s backup;",
        "server 127.0.0.1:8703 max_fails=3 fail_timeout=2s backup;",
    ]


def test_prefixes_passive_health_and_forwarding(tmp_path):
    lines = lines_of(render(tmp_path))
    assert "location ^~ /node-1/ {" in lines
    assert "rewrite ^/node-1(/.*)$ $1 break;" in lines
    assert "proxy_pass http://cobrowse_only_node-1;" in lines
    assert "server 127.0.0.1:8703 weight=1 max_fails=3 fail_timeout=2s;" in lines
    assert "proxy_next_upstream error timeout;" in lines
    assert "proxy_next_upstream error timeout non_idempotent;" in lines
    assert "proxy_connect_timeout 750ms;" in lines
    assert "proxy_http_version 1.1;" in lines
    assert "keepalive 16;" in lines
    assert "proxy_set_header X-Forwarded-For $cobrowse_forwarded_for;" in lines
    assert "proxy_set_header X-Forwarded-Proto $cobrowse_forwarded_proto;" in lines


def test_websockets_upgrade_keep_alive_and_tunnel_timeouts(tmp_path):
    text = render(tmp_path)
    upgrade_map = text[text.index("map $http_upgrade $connection_upgrade {") :]
    upgrade_map = lines_of(upgrade_map[: upgrade_map.index("}")])
    # No Connection field without an Upgrade: upstream keep-alive keeps working.
    assert upgrade_map[1:3] == ["default upgrade;", '"" "";']
    lines = lines_of(text)
    assert "proxy_set_header Upgrade $http_upgrade;" in lines
    assert "proxy_set_header Connection $connection_upgrade;" in lines
    assert 'proxy_set_header Connection "";' not in lines
    # The channel, under each prefix and under rules 2 to 4, may stay silent for tunnelTimeout;
    # other requests keep serverTimeout.
    node_2 = text[text.index("location ^~ /node-2/ {") :]
    node_2 = lines_of(node_2[: node_2.index("location @node-2_unavailable")])
    channel = "location ~ ^/node-2/cobrowse/rest/live/users/[^/]+/channel$ {"
    assert node_2[node_2.index(channel) :][:6] == [
        channel,
        "rewrite ^/node-2(/.*)$ $1 break;",
        "proxy_pass http://cobrowse_only_node-2;",
        "proxy_read_timeout 45000ms;",
        "proxy_send_timeout 45000ms;",
        "error_page 502 503 504 = @node-2_unavailable;",
    ]
    spread = text[text.index("location ~ ^/cobrowse/rest/live/users/[^/]+/channel$ {") :]
    assert lines_of(spread)[1:4] == [
        "proxy_pass http://$cobrowse_upstream;",
        "proxy_read_timeout 45000ms;",
        "proxy_send_timeout 45000ms;",
    ]
    assert lines.count("proxy_read_timeout 30000ms;") == 1  # the server's default
    # On reload, old workers holding tunnels stop after serverTimeout.
    assert "worker_shutdown_timeout 30000ms;" in lines


def test_a_drained_node_takes_only_its_sticky_traffic(tmp_path):
    lines = lines_of(render(tmp_path, drained=frozenset({"node-1"})))
    assert "server 127.0.0.1:8701 weight=1 max_fails=3 fail_timeout=2s down;" in lines
    assert "server 127.0.0.1:8701 max_fails=3 fail_timeout=2s down;" in lines  # as a fallback
    assert "server 127.0.0.1:8701 max_fails=3 fail_timeout=2s;" in lines  # its own prefix
    assert "cobrowse_sticky_node-1 cobrowse_spread;" in lines  # creates with its cookie


@pytest.mark.parametrize("drained", [frozenset(), frozenset({"node-2"})])
def test_nginx_accepts_the_generated_file(tmp_path, drained):
    path = tmp_path / "nginx.conf"
    path.write_text(render(tmp_path, drained))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(path), "-e", "stderr"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr


def test_deploy_example_is_the_generated_file(tmp_path, monkeypatch):
    # Run the command named in the file's header, on a copy of deploy/, and compare bytes.
    for name in list(os.environ):
        if name.startswith("COBROWSE_"):
            monkeypatch.delenv(name)
    (tmp_path / "deploy").mkdir()
    shutil.copy(REPO / "deploy" / "cluster.ini", tmp_path / "deploy" / "cluster.ini")
    monkeypatch.chdir(tmp_path)
    assert main(REGENERATE.split()[1:]) == 0
    expected = (tmp_path / "deploy" / "nginx.conf").read_bytes()
    assert (REPO / "deploy" / "nginx.conf").read_bytes() == expected, (
        f"deploy/nginx.conf is stale: run `{REGENERATE}`"
    )
    assert f"#     {REGENERATE}\n" in expected.decode()
    assert "user www-data;" in expected.decode()


def test_draining_an_unknown_node_is_refused(tmp_path, capsys):
    config = tmp_path / "cluster.ini"
    config.write_text(BASE_CLUSTER)
    assert main(["nginx-config", "--config", str(config), "--drain", "node-9"]) == 2
    assert "node-9" in capsys.readouterr().err


# The shared store: a prefix whose node fails goes on to the other nodes.


def render_shared(tmp_path, drained: frozenset[str] = frozenset()) -> str:
    config = cluster_from(BASE_CLUSTER, tmp_path, store={"backend": "redis"})
    return render_nginx(config, command="test", run_dir=str(tmp_path), drained=drained)


def prefix_block(text: str, node: str) -> list[str]:
    block = text[text.index(f"location ^~ /{node}/ {{") :]
    return lines_of(block[: block.index(f"location @{node}_unavailable")])


def test_with_the_shared_store_prefixes_go_on_to_the_other_nodes(tmp_path):
    text = render_shared(tmp_path)
    block = prefix_block(text, "node-1")
    # The prefix and its channel: node-1, else the others (backup servers of the upstream).
    assert block.count("proxy_pass http://cobrowse_sticky_node-1;") == 2
    assert "proxy_pass http://cobrowse_only_node-1;" not in block
    assert "proxy_next_upstream error timeout;" in block
    sticky = text[text.index("upstream cobrowse_sticky_node-1 {") :]
    assert [line for line in lines_of(sticky[: sticky.index("}")]) if "server" in line] == [
        "server 127.0.0.1:8701 max_fails=2 fail_timeout=2s;",
        "server 127.0.0.1:8702 max_fails=2 fail_timeout=2s backup;",
        "server 127.0.0.1:8703 max_fails=2 fail_timeout=2s backup;",
    ]
    assert "any node serves any session" in text


def test_without_the_shared_store_prefixes_stay_on_their_node(tmp_path):
    text = render(tmp_path)
    block = prefix_block(text, "node-1")
    assert block.count("proxy_pass http://cobrowse_only_node-1;") == 2
    assert "proxy_next_upstream error timeout;" not in block
    assert "any node serves any session" not in text


def test_nginx_accepts_the_shared_store_file(tmp_path):
    path = tmp_path / "nginx.conf"
    path.write_text(render_shared(tmp_path, frozenset({"node-2"})))
    check = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(path), "-e", "stderr"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr
