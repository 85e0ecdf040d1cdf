"""The `cobrowse` command: one entry point, one subcommand per task."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cobrowse.commands import cluster, config, lbconfig, loadtest, node, router

# Each module adds its subcommands; the order is the order of `cobrowse --help`.
COMMAND_MODULES = (config, node, router, cluster, lbconfig, loadtest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cobrowse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `cobrowse` command line."""
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
