"""`cobrowse haproxy-config` and `cobrowse nginx-config`."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from cobrowse.commands import load_or_exit
from cobrowse.ops.lbconfig.haproxy import DEFAULT_STATS_SOCKET, DEFAULT_USER


def _command(name: str, args: argparse.Namespace, options: list[tuple[str, str | None]]) -> str:
    """Return the command line that writes the same file again (for the file's header)."""
    words = ["cobrowse", name, "--config", args.config]
    for option, value in options:
        if value is not None:
            words += [option, value]
    if args.output:
        words += ["--output", args.output]
    return shlex.join(words)


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def haproxy_config(args: argparse.Namespace) -> int:
    """Write haproxy.cfg for the cluster file."""
    from cobrowse.ops.lbconfig.haproxy import render_haproxy

    config = load_or_exit(args.config)
    stats_socket = args.stats_socket or DEFAULT_STATS_SOCKET
    user = DEFAULT_USER if args.user is None else args.user
    command = _command(
        "haproxy-config", args, [("--stats-socket", args.stats_socket), ("--user", args.user)]
    )
    _write(
        render_haproxy(config, command=command, stats_socket=stats_socket, user=user or None),
        args.output,
    )
    return 0


def nginx_config(args: argparse.Namespace) -> int:
    """Write nginx.conf for the cluster file."""
    from cobrowse.ops.lbconfig.nginx import render_nginx

    config = load_or_exit(args.config)
    names = {node.name for node in config.nodes}
    unknown = sorted(set(args.drain) - names)
    if unknown:
        print(f"--drain: no such node in {args.config}: {', '.join(unknown)}", file=sys.stderr)
        return 2
    options: list[tuple[str, str | None]] = [("--run-dir", args.run_dir)]
    options += [("--drain", name) for name in args.drain]
    _write(
        render_nginx(
            config,
            command=_command("nginx-config", args, options),
            run_dir=args.run_dir,
            drained=frozenset(args.drain),
        ),
        args.output,
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    haproxy = commands.add_parser(
        "haproxy-config", help="write haproxy.cfg (HAProxy 2.6) for a cluster file"
    )
    haproxy.add_argument("--config", required=True, help="the cluster file (INI)")
    haproxy.add_argument("--output", "-o", help="write here instead of standard output")
    haproxy.add_argument(
        "--stats-socket", help=f"HAProxy's runtime API socket (default {DEFAULT_STATS_SOCKET})"
    )
    haproxy.add_argument(
        "--user",
        help=f"the user HAProxy runs as once started as root (default {DEFAULT_USER}; "
        "'' keeps the user that started it)",
    )
    haproxy.set_defaults(handler=haproxy_config)

    nginx = commands.add_parser(
        "nginx-config", help="write nginx.conf (open-source nginx 1.22) for a cluster file"
    )
    nginx.add_argument("--config", required=True, help="the cluster file (INI)")
    nginx.add_argument("--output", "-o", help="write here instead of standard output")
    nginx.add_argument(
        "--run-dir",
        help="run unprivileged from this directory (pid, temporary files, logs; errors on "
        "stderr), e.g. for tests; default: the paths of Debian's nginx package",
    )
    nginx.add_argument(
        "--drain",
        action="append",
        default=[],
        metavar="NODE",
        help="take no new sessions on NODE while its sticky traffic continues (repeatable): "
        "nginx cannot read a drain from /health",
    )
    nginx.set_defaults(handler=nginx_config)
