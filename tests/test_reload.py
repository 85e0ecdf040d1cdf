"""A node's settings on SIGHUP: adopted when sound, refused when invalid or stranding tokens."""

from __future__ import annotations

import logging

import pytest

from cobrowse.config.loader import ConfigError, ConfigProblem
from cobrowse.ops.reload import ReloadableSettings, reload_problems
from tests.conftest import BASE_CLUSTER

MORE_ORIGINS = BASE_CLUSTER.replace(
    "allowedOrigins = http://localhost:8080,",
    "allowedOrigins = http://new.test, http://localhost:8080,",
)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("[node:node-3]\n", "[node:node-3]\nweight = 2\n"), "node-3 changes vnodes/weight"),
        (("[node:node-3]\n", "[node:node-3]\nvnodes = 10\n"), "node-3 changes vnodes/weight"),
        (
            ("[node:node-3]\n", "[node:node-4]\nbind = 127.0.0.1:8704\n\n[node:node-3]\n"),
            "node node-4 joins ring epoch 0",
        ),
    ],
)
def test_ring_changes_that_strand_tokens_are_problems(make_settings, change, problem):
    old = make_settings()
    new = make_settings(text=BASE_CLUSTER.replace(*change))
    assert any(problem in line for line in reload_problems(old, new))


def test_a_new_node_in_a_new_epoch_and_new_origins_are_fine(make_settings):
    grown = MORE_ORIGINS + "\n[node:node-4]\nbind = 127.0.0.1:8704\nringEpoch = 1\n"
    assert reload_problems(make_settings(), make_settings(text=grown)) == []


def test_a_moved_database_is_a_problem(make_settings, tmp_path):
    moved = BASE_CLUSTER.replace(
        "[node:node-1]\n", f"[node:node-1]\ndataDir = {tmp_path / 'elsewhere'}\n"
    )
    problems = reload_problems(make_settings(), make_settings(text=moved))
    assert len(problems) == 1
    assert "database would move" in problems[0]


def test_reload_adopts_sound_settings(make_settings):
    held = ReloadableSettings(make_settings(), lambda: make_settings(text=MORE_ORIGINS))
    assert held.reload() is True
    assert held.current.cluster.origins.rule_for_header("http://new.test", False)[1] is not None


@pytest.mark.parametrize(
    "failure",
    [
        ConfigError([ConfigProblem("cluster", "url", "not a URL")]),
        KeyError("node-1"),
    ],
)
def test_reload_keeps_the_old_settings_when_the_file_is_unusable(make_settings, caplog, failure):
    before = make_settings()

    def read():
        raise failure

    held = ReloadableSettings(before, read)
    with caplog.at_level(logging.ERROR, logger="cobrowse.node"):
        assert held.reload() is False
    assert held.current is before
    assert "reload refused" in caplog.text


def test_reload_keeps_the_old_settings_when_it_would_strand_tokens(make_settings, caplog):
    before = make_settings()
    reweighted = BASE_CLUSTER.replace("[node:node-3]\n", "[node:node-3]\nweight = 2\n")
    held = ReloadableSettings(before, lambda: make_settings(text=reweighted))
    with caplog.at_level(logging.ERROR, logger="cobrowse.node"):
        assert held.reload() is False
    assert held.current is before
    assert "node-3" in caplog.text


def test_restart_only_options_are_adopted_with_a_warning(make_settings, caplog):
    more_workers = BASE_CLUSTER.replace("[node:node-1]\n", "[node:node-1]\nworkers = 6\n")
    held = ReloadableSettings(make_settings(), lambda: make_settings(text=more_workers))
    with caplog.at_level(logging.WARNING, logger="cobrowse.node"):
        assert held.reload() is True
    assert "workers change at the next restart" in caplog.text
