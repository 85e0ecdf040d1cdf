"""A node's settings across SIGHUP: re-read the cluster file, adopt it only if it is safe.

Gunicorn replaces its workers on SIGHUP; they build their app after the fork, from whatever
settings the master holds then. So the master re-reads the cluster file first and keeps the old
settings when the new file is invalid or would strand live sessions, rather than booting
workers that fail or that disown tokens they issued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cobrowse.config.loader import ConfigError
from cobrowse.config.settings import NodeSettings
from cobrowse.sessions.ring import ClusterRing, ring_change_problems

log = logging.getLogger("cobrowse.node")

# Gunicorn took these from the settings when it started: a reload cannot change them.
RESTART_ONLY = ("bind", "workers")


def reload_problems(old: NodeSettings, new: NodeSettings) -> list[str]:
    """Return why `new` cannot replace `old` in a running node: none if it can."""
    problems = ring_change_problems(ClusterRing(old.cluster.nodes), ClusterRing(new.cluster.nodes))
    if new.database_path != old.database_path:
        problems.append(
            f"the node's database would move from {old.database_path} to {new.database_path}"
        )
    return problems


class ReloadableSettings:
    """The settings that new workers get, replaced on reload when the new file is sound."""

    def __init__(self, settings: NodeSettings, read: Callable[[], NodeSettings]) -> None:
        self.current = settings
        self.read = read

    def reload(self) -> bool:
        """Re-read the cluster file; adopt it and return True, or log why not and return False."""
        try:
            fresh = self.read()
        except ConfigError as error:
            log.error("reload refused, cluster file invalid:\n%s", error)
            return False
        except KeyError:
            log.error("reload refused: the cluster file no longer has [node:%s]", self.current.name)
            return False
        problems = reload_problems(self.current, fresh)
        if problems:
            log.error("reload refused:\n%s", "\n".join(problems))
            return False
        ignored = [
            option
            for option in RESTART_ONLY
            if getattr(fresh.node, option) != getattr(self.current.node, option)
        ]
        if ignored:
            log.warning("%s change at the next restart, not on reload", ", ".join(ignored))
        self.current = fresh
        log.info("reloaded the cluster file: new workers use it")
        return True
