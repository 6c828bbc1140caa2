"""`rlhf-top`: the live TUI by default; `--once`, `--json`, `report RUN`, `watch`, `serve`, `--demo`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rlhf_tui import __version__
from rlhf_tui.core.config import is_secret_key

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
NOTIFY_ENV = "RLHF_TOP_NOTIFY"  # `watch`'s destinations when --notify is not given


def default_roots() -> list[str]:
    return ["./runs"] if os.path.isdir("./runs") else ["."]


def storage_options(pairs: list[str] | None) -> dict[str, object]:
    """`--storage-option KEY=VALUE`s: a VALUE that is JSON (true, 5, {...}) is read as JSON, else as text."""
    options: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option wants KEY=VALUE, not {pair!r}")
        if is_secret_key(key):
            options[key] = value  # a password of digits is still text
            continue
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def root_problems(roots: list[str]) -> list[str]:
    """Why roots cannot be watched: a local one that is not a directory, a remote one whose package is missing."""
    from rlhf_tui.core.filesystem import is_remote, missing_backend

    problems = []
    for root in roots:
        if is_remote(root):
            problem = missing_backend(root)
            if problem:
                problems.append(problem)
        elif not os.path.isdir(root):
            problems.append(f"not a directory: {root}")
    return problems


ROOTS_HELP = (
    "directories to search for runs (default ./runs, else .); also ssh://host/path, s3://bucket/prefix, gs://bucket/prefix"
)


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="an fsspec option for ssh://, s3:// and gs:// roots (endpoint_url=http://minio:9000, anon=true, ...)",
    )


def main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-top",
        description="Live monitor and diagnostician for post-training runs (DPO, PPO, GRPO, ...).",
        epilog="Subcommands: rlhf-top report RUN_DIR [-o FILE] writes the diagnostic report; "
        "rlhf-top watch ROOTS --notify URL alerts you without a screen; "
        "rlhf-top serve ROOTS shows this app in a browser. Each has its own --help.",
    )
    parser.add_argument("roots", nargs="*", help=ROOTS_HELP)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="print one table of all runs and exit")
    mode.add_argument("--json", action="store_true", help="print all runs as JSON and exit")
    mode.add_argument("--demo", action="store_true", help="watch simulated live runs (nothing is kept)")
    add_following_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no terminal bell or desktop notification on events")
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="also send events to this Apprise URL, as `watch` does (repeatable; needs rlhf-top[notify])",
    )
    parser.add_argument(
        "--color-system",
        choices=["auto", "standard", "256", "truecolor", "none"],
        default="auto",
        help="terminal colours (NO_COLOR is honoured)",
    )
    parser.add_argument("--version", action="version", version=f"rlhf-top {__version__}")
    return parser


def add_following_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll", type=float, metavar="SECONDS", help="poll files instead of inotify (NFS/Lustre); remote roots' interval"
    )
    add_storage_option(parser)
    parser.add_argument("--rules", type=Path, metavar="DIR", help="directory of your own rule files (YAML)")
    parser.add_argument("--depth", type=int, default=6, help="how deep to search for runs (default 6)")


def event_kinds(text: str) -> list[str]:
    from rlhf_tui.events import KINDS

    kinds = [kind.strip() for kind in text.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"not an event: {', '.join(unknown) or text!r} (events: {','.join(KINDS)})")
    return kinds


def watch_parser() -> argparse.ArgumentParser:
    from rlhf_tui.events import KINDS

    kinds = "\n".join(f"  {kind:<9} {meaning}" for kind, meaning in KINDS.items())
    parser = argparse.ArgumentParser(
        prog="rlhf-top watch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Follow runs without a screen, as the TUI does, and send a message when something\n"
        "happens to one. Low on CPU; fine under nohup, tmux, systemd or a SLURM job; stops cleanly on\n"
        "SIGTERM or SIGINT.",
        epilog=f"""events (--on):
{kinds}

One message per event, nothing repeated while it lasts; a digest when many come at once. Each says
run, host, trainer, step, status, the finding or exception, and `rlhf-top report PATH`. Failed
deliveries are retried with backoff and logged. What was sent is kept under $XDG_STATE_HOME/rlhf-top
(default ~/.local/state/rlhf-top), so a restarted watcher sends nothing twice; on its very first
start the runs already there are taken as they are.

examples:
  rlhf-top watch ./runs --notify 'ntfys://ntfy.sh/my-secret-topic'
  rlhf-top watch ./runs --notify 'https://hooks.slack.com/services/T000/B000/XXXX' --on crash,killed,stall
  rlhf-top watch ./runs --dry-run
URLs: https://github.com/caronc/apprise/wiki""",
    )
    parser.add_argument("roots", nargs="*", help=ROOTS_HELP)
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="where to send: an Apprise URL (Slack, Discord, Teams, Telegram, ntfy, email, JSON webhook, ...); "
        f"repeatable; without it, the URLs in ${NOTIFY_ENV} (space-separated), which keeps secrets out of `ps`",
    )
    parser.add_argument(
        "--on",
        type=event_kinds,
        default=list(KINDS),
        metavar="EVENTS",
        help=f"comma-separated events to send (default all: {','.join(KINDS)})",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the messages instead of sending them")
    add_following_options(parser)
    return parser


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-top serve",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The same app in a web browser (through textual-serve; needs rlhf-top[serve]).\n"
        "Each browser tab runs its own rlhf-top.",
        epilog="""From your laptop, through an SSH tunnel (the same port on both ends):
  ssh -N -L 8000:127.0.0.1:8000 gpu-box      # then open http://127.0.0.1:8000

It listens on 127.0.0.1 only by default. --host 0.0.0.0 (or any address other than loopback) shows
your runs, their configs and tracebacks to everyone who can reach that address: there is no login.
Behind a proxy or a tunnel to another port, give the address browsers use with --public-url.""",
    )
    parser.add_argument("roots", nargs="*", help=ROOTS_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--public-url", metavar="URL", help="the address browsers reach it at (default http://HOST:PORT)")
    add_following_options(parser)
    return parser


def report_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-top report",
        description="Write the RLHF Run Diagnostic Report (Markdown) for one run directory.",
    )
    parser.add_argument("run_dir", help="the run directory (or ssh://host/path, s3://bucket/prefix)")
    parser.add_argument("-o", "--output", type=Path, help="write to FILE instead of stdout")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    parser.add_argument("--json", action="store_true", help="the same content as JSON")
    parser.add_argument("--rules", type=Path, metavar="DIR", help="directory of your own rule files (YAML)")
    add_storage_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:
        # `rlhf-top --json | head`: whoever read the output has gone; no traceback for that.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str]) -> int:
    if argv and argv[0] == "report":
        return run_report(report_parser().parse_args(argv[1:]))
    if argv and argv[0] in ("watch", "serve"):
        parser = watch_parser() if argv[0] == "watch" else serve_parser()
        args = parser.parse_args(argv[1:])
    else:
        parser = main_parser()
        args = parser.parse_args(argv)
    if args.poll is not None and args.poll <= 0:
        parser.error("--poll needs a positive number of seconds")
    roots = args.roots or default_roots()
    try:
        args.storage_options = storage_options(args.storage_option)
    except ValueError as exc:
        parser.error(str(exc))
    if not getattr(args, "demo", False):
        problems = root_problems(roots)
        if problems:
            print(f"{parser.prog}: {'; '.join(problems)}", file=sys.stderr)
            return EXIT_USAGE
    if argv and argv[0] == "watch":
        args.notify = args.notify or os.environ.get(NOTIFY_ENV, "").split()
        if not args.notify and not args.dry_run:
            parser.error(f"say where to send: --notify URL or ${NOTIFY_ENV} (or --dry-run to print instead)")
        from rlhf_tui.watcher import run_watch

        return run_watch(roots, args)
    if argv and argv[0] == "serve":
        from rlhf_tui.serve import run_serve

        return run_serve(roots, args)
    if args.once or args.json:
        if args.notify or args.quiet:
            parser.error("--notify and --quiet are for the live TUI")
        return run_headless(roots, args)
    return run_tui(roots, args)


def run_headless(roots: list[str], args: argparse.Namespace) -> int:
    from rlhf_tui.core.remote import RemoteSettings
    from rlhf_tui.session import open_session
    from rlhf_tui.headless import print_json, print_table

    remote = RemoteSettings(args.storage_options, args.poll or RemoteSettings.poll_seconds)
    session = open_session(roots, max_depth=args.depth, rules_dir=args.rules, remote=remote)
    try:
        session.load()
        if args.json:
            print_json(session)
        else:
            print_table(session, color_system=args.color_system)
        unreachable = any(status.state != "connected" for status in session.monitor.root_status())
        return EXIT_PROBLEM if session.has_problems() or unreachable else EXIT_OK
    finally:
        session.close()


def run_report(args: argparse.Namespace) -> int:
    from rlhf_tui.core.discover import DEFAULT_MAX_DEPTH
    from rlhf_tui.core.remote import RemoteSettings
    from rlhf_tui.session import open_session
    from rlhf_tui.report import build_report, is_inside, render_json, render_markdown, write_new_file

    try:
        options = storage_options(args.storage_option)
    except ValueError as exc:
        report_parser().error(str(exc))
    root, wanted = args.run_dir, None
    store = os.path.dirname(os.path.abspath(root))
    if not os.path.isdir(root) and os.path.isfile(store):  # a run in a Trackio or MLflow database: DATABASE/RUN
        root, wanted = os.path.dirname(store), os.path.abspath(args.run_dir)
    problems = root_problems([root])
    if problems:
        print(f"rlhf-top report: {problems[0]}", file=sys.stderr)
        return EXIT_USAGE
    depth = 1 if wanted else DEFAULT_MAX_DEPTH
    session = open_session([root], max_depth=depth, rules_dir=args.rules, remote=RemoteSettings(options))
    try:
        session.load()
    finally:
        session.close()
    runs = [r for r in session.runs() if wanted is None or r.path == wanted]
    if not runs:
        problem = "; ".join(session.notes) or f"no run found in {args.run_dir}"
        print(f"rlhf-top report: {problem}", file=sys.stderr)
        return EXIT_USAGE
    run = min(runs, key=lambda r: len(os.path.relpath(r.path, session.monitor.roots[0])))
    report = build_report(run, session.diagnosis(run))
    text = json.dumps(render_json(report), indent=2) + "\n" if args.json else render_markdown(report)
    if args.output is None:
        sys.stdout.write(text)
    elif any(is_inside(str(args.output.parent), r.path) for r in runs):
        print(f"rlhf-top report: {args.output} is inside a run directory; rlhf-top never writes there", file=sys.stderr)
        return EXIT_USAGE
    else:
        try:
            write_new_file(args.output, text, force=args.force)
        except FileExistsError:
            print(f"rlhf-top report: {args.output} exists (use --force to overwrite)", file=sys.stderr)
            return EXIT_USAGE
        except OSError as exc:
            print(f"rlhf-top report: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    return EXIT_PROBLEM if report.is_problem else EXIT_OK


def run_tui(roots: list[str], args: argparse.Namespace) -> int:
    from rlhf_tui.notify import MissingApprise, apprise_transports

    try:
        destinations = apprise_transports(args.notify)
    except (MissingApprise, ValueError) as exc:
        print(f"rlhf-top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from rlhf_tui.ui import launch

    return launch(roots, args, destinations)
