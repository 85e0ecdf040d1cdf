"""`cobrowse check-config` warns when WebSocket tunnels would be closed between two pings."""

from __future__ import annotations

import pytest

from cobrowse.cli import main
from tests.conftest import BASE_CLUSTER


@pytest.mark.parametrize(
    ("tunnel", "warned"),
    [("120", False), ("41", False), ("40", True), ("25", True)],
)
def test_a_tunnel_timeout_within_ping_interval_plus_timeout_is_a_warning(
    tmp_path, capsys, tunnel, warned
):
    path = tmp_path / "cluster.ini"
    path.write_text(
        BASE_CLUSTER
        + f"\n[lb]\ntunnelTimeout = {tunnel}\n\n[realtime]\npingInterval = 20\npingTimeout = 20\n"
    )
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "OK" in captured.out
    lines = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    if warned:
        (line,) = lines
        assert f"tunnelTimeout ({tunnel} s)" in line
        assert "pingInterval + pingTimeout (20 + 20 s)" in line
    else:
        assert not lines
