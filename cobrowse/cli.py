"""The `cobrowse` command: one entry point, one subcommand per task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cobrowse.config import ConfigError, load_cluster
from cobrowse.settings import ClusterConfig


def _load(path: str) -> ClusterConfig:
    try:
        return load_cluster(path)
    except ConfigError as error:
        print(f"{path}: invalid cluster file:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a cluster file and summarise it."""
    config = _load(args.file)
    print(f"{args.file}: OK — cluster {config.url}, {len(config.nodes)} node(s)")
    for node in config.nodes:
        extras = []
        if node.backup:
            extras.append("backup")
        if node.ring_epoch:
            extras.append(f"ringEpoch {node.ring_epoch}")
        suffix = f" ({', '.join(extras)})" if extras else ""
        print(f"  {node.name}: {node.bind}, {node.workers} workers, data {node.data_dir}{suffix}")
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    """Run one node of the cluster under Gunicorn."""
    from cobrowse.node import run_node

    config = _load(args.config)
    try:
        settings = config.node_settings(args.name)
    except KeyError:
        names = ", ".join(node.name for node in config.nodes)
        print(f"no [node:{args.name}] in {args.config} (nodes: {names})", file=sys.stderr)
        return 2
    overrides = {"workers": args.workers} if args.workers else None
    run_node(settings, overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cobrowse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check-config", help="validate a cluster file")
    check.add_argument("file", help="the cluster file (INI)")
    check.set_defaults(handler=cmd_check_config)

    node = commands.add_parser("node", help="run one node under Gunicorn")
    node.add_argument("--config", required=True, help="the cluster file (INI)")
    node.add_argument("--name", required=True, help="the node's [node:NAME] section")
    node.add_argument("--workers", type=int, help="override the node's workers option")
    node.set_defaults(handler=cmd_node)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `cobrowse` command line."""
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
