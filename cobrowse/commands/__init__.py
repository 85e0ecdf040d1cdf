"""Subcommands of `cobrowse`: one module per concern, each with a `register(commands)`."""

from __future__ import annotations

import sys

from cobrowse.config.loader import ConfigError, load_cluster
from cobrowse.config.settings import ClusterConfig


def load_or_exit(path: str) -> ClusterConfig:
    """Load a cluster file, or print every mistake and exit with status 2."""
    try:
        return load_cluster(path)
    except ConfigError as error:
        print(f"{path}: invalid cluster file:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None
