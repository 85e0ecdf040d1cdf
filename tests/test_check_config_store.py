"""`cobrowse check-config` summarises `[store]` and warns about a risky shared store."""

from __future__ import annotations

import pytest

from cobrowse.cli import main
from tests.conftest import BASE_CLUSTER


def check(tmp_path, capsys, store: str) -> tuple[str, list[str]]:
    path = tmp_path / "cluster.ini"
    path.write_text(BASE_CLUSTER + "\n[store]\n" + store)
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    return captured.out, warnings


def test_the_embedded_store_is_named_without_warnings(tmp_path, capsys):
    out, warnings = check(tmp_path, capsys, "backend = sqlite\n")
    assert "store: sqlite (each node's own file" in out
    assert warnings == []


def test_one_redis_is_a_single_point_of_failure(tmp_path, capsys):
    out, warnings = check(tmp_path, capsys, "backend = redis\nurl = redis://127.0.0.1:6379/0\n")
    assert "store: redis redis://127.0.0.1:6379/0, prefix 'cobrowse:', timeout 2 s" in out
    (warning,) = warnings
    assert "single point of failure" in warning
    assert "[store] sentinels" in warning


@pytest.mark.parametrize(
    ("url", "clear"),
    [
        ("redis://:s3cret@10.0.0.5:6380/2", True),
        ("redis://redis.internal:6379/0", True),
        ("rediss://:s3cret@10.0.0.5:6380/2", False),
        ("redis://localhost:6379/0", False),
        ("redis://[::1]:6379/0", False),
    ],
)
def test_a_remote_redis_without_tls_is_a_warning_and_passwords_stay_hidden(
    tmp_path, capsys, url, clear
):
    out, warnings = check(tmp_path, capsys, f"backend = redis\nurl = {url}\n")
    assert "s3cret" not in out
    if "s3cret" in url:
        assert ":***@10.0.0.5:6380/2" in out
    assert any("without TLS" in warning for warning in warnings) is clear


def test_sentinels_are_summarised_without_the_single_point_warning(tmp_path, capsys):
    out, warnings = check(
        tmp_path,
        capsys,
        "backend = redis\nsentinels = 10.0.0.1:26379, 10.0.0.2:26379\nmasterName = main\n",
    )
    assert "store: redis Sentinel master 'main' at 10.0.0.1:26379, 10.0.0.2:26379" in out
    assert warnings == []
