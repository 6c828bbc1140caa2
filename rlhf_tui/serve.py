"""`rlhf-top serve ROOTS`: the TUI in a web browser, through textual-serve (`rlhf-top[serve]`).

textual-serve starts one `rlhf-top ROOTS` per browser tab, through a shell, and relays its screen and
keys over a websocket. It listens on loopback unless told otherwise: there is no login, and the runs,
their configs and tracebacks are shown to whoever can reach the port.
"""

from __future__ import annotations

import argparse
import shlex
import sys

INSTALL = "pip install 'rlhf-top[serve]'"


def app_command(roots: list[str], args: argparse.Namespace) -> str:
    """The shell command that runs the TUI for one browser tab (quiet: a browser tab has no bell to ring)."""
    command = [sys.executable, "-m", "rlhf_tui", *roots, "--depth", str(args.depth), "--quiet"]
    if args.rules is not None:
        command += ["--rules", str(args.rules)]
    if args.poll is not None:
        command += ["--poll", str(args.poll)]
    for option in args.storage_option or []:
        command += ["--storage-option", option]
    return shlex.join(command)


def run_serve(roots: list[str], args: argparse.Namespace) -> int:
    try:
        from textual_serve.server import Server
    except ImportError:
        print(f"rlhf-top serve: serving in a browser needs textual-serve: {INSTALL}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"rlhf-top serve: listening on {args.host}: anyone who can reach port {args.port} there sees your runs",
            file=sys.stderr,
        )
    else:
        print(f"rlhf-top serve: no login: every user of this machine can open port {args.port}", file=sys.stderr)
    server = Server(app_command(roots, args), host=args.host, port=args.port, title="rlhf-top", public_url=args.public_url)
    server.serve()
    return 0
