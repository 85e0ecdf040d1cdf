"""`cobrowse node` and `cobrowse drain`."""

from __future__ import annotations

import argparse
import sys

from cobrowse.commands import load_or_exit
from cobrowse.config.settings import ClusterConfig, NodeSettings


def _node_settings(config: ClusterConfig, path: str, name: str) -> NodeSettings:
    try:
        return config.node_settings(name)
    except KeyError:
        names = ", ".join(node.name for node in config.nodes)
        print(f"no [node:{name}] in {path} (nodes: {names})", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: argparse.Namespace) -> int:
    """Run one node of the cluster under Gunicorn."""
    from cobrowse.config.loader import load_cluster
    from cobrowse.ops.node import run_node

    settings = _node_settings(load_or_exit(args.config), args.config, args.name)
    overrides = {"workers": args.workers} if args.workers else None
    run_node(settings, overrides, lambda: load_cluster(args.config).node_settings(args.name))
    return 0


def drain(args: argparse.Namespace) -> int:
    """Drain a node (or undo it): its /health answers 404, so it takes no new sessions."""
    import asyncio

    from cobrowse.store.sqlite import SqliteSessionStore

    settings = _node_settings(load_or_exit(args.config), args.config, args.name)
    store = SqliteSessionStore.at(settings.database_path)
    asyncio.run(store.set_node_state(draining=not args.undo))
    state = (
        "no longer draining" if args.undo else "draining: no new sessions, sticky traffic continues"
    )
    print(f"{args.name}: {state} (its /health answers {200 if args.undo else 404})")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = commands.add_parser("node", help="run one node under Gunicorn")
    node.add_argument("--config", required=True, help="the cluster file (INI)")
    node.add_argument("--name", required=True, help="the node's [node:NAME] section")
    node.add_argument("--workers", type=int, help="override the node's workers option")
    node.set_defaults(handler=run)

    drain_parser = commands.add_parser(
        "drain", help="drain a running node (run on the node's host: it writes its database)"
    )
    drain_parser.add_argument("name", help="the node's [node:NAME] section")
    drain_parser.add_argument("--config", required=True, help="the cluster file (INI)")
    drain_parser.add_argument("--undo", action="store_true", help="take new sessions again")
    drain_parser.set_defaults(handler=drain)
