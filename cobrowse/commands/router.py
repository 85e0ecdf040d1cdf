"""`cobrowse router`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cobrowse.commands import load_or_exit


def run(args: argparse.Namespace) -> int:
    """Run the router in front of the cluster's nodes."""
    from cobrowse.observe.logs import configure_logging
    from lb.server import run_router

    config = load_or_exit(args.config)
    configure_logging(config.logging, process="router")
    run_router(Path(args.config))
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    router = commands.add_parser("router", help="run the hash-ring router in front of the nodes")
    router.add_argument("--config", required=True, help="the cluster file (INI)")
    router.set_defaults(handler=run)
