"""`rlhf-top watch ROOTS --notify URL`: follow runs without a screen and tell people what happens.

The follower (follow.py) runs in a thread, exactly as behind the TUI; the main thread waits for it and
turns SIGTERM or SIGINT into a clean stop (systemd, SLURM's time limit, Ctrl-C), after which what is
still waiting is tried once more and kept for the next start. Logs go to standard error.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading

from rlhf_tui.events import EventTracker
from rlhf_tui.follow import Follower, LoopSettings, Pass
from rlhf_tui.notify import MissingApprise, Notifier, PrintTransport, apprise_transports
from rlhf_tui.watch_state import AlreadyWatching, WatchState, state_file

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger(__name__)


def run_watch(roots: list[str], args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s rlhf-top watch: %(message)s")
    logging.getLogger("apprise").setLevel(logging.WARNING)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
    kinds = list(args.on)
    try:
        destinations = [PrintTransport()] if args.dry_run else apprise_transports(args.notify)
    except (MissingApprise, ValueError) as exc:
        print(f"rlhf-top watch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    state = None
    if not args.dry_run:
        state = WatchState(state_file(roots, args.notify, kinds), roots)
        try:
            state.acquire()
        except (AlreadyWatching, OSError) as exc:
            print(f"rlhf-top watch: {exc}", file=sys.stderr)
            return EXIT_USAGE
        state.load()
    notifier = Notifier(destinations, on_done=(lambda message: state.sent(message.events)) if state else None)
    watch = _Watch(roots, EventTracker(state.runs if state else None, kinds), state, notifier)
    follower = Follower(
        LoopSettings(
            roots=roots,
            depth=args.depth,
            rules_dir=args.rules,
            poll_seconds=args.poll,
            storage_options=args.storage_options,
        ),
        watch.on_pass,
        watch.tracker,
    )
    watch.follower = follower
    log.info(
        "watching %s for %s; sending to %s%s",
        ", ".join(roots),
        ",".join(kinds),
        ", ".join(d.label for d in destinations),
        f"; state in {state.path}" if state else "",
    )
    if state is not None and state.pending:
        log.info("%d event(s) not sent before the last stop: sending them now", len(state.pending))
        notifier.add(state.pending)

    def stop(signum: int, frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        follower.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    thread = threading.Thread(target=follower.run, name="rlhf-top-follow")
    thread.start()
    thread.join()  # signal handlers run while the main thread waits here
    notifier.close()
    log.info("stopped")
    return EXIT_OK if follower.stopped else EXIT_FAILED


class _Watch:
    """What the watcher does with each pass of the follower: log, keep the state, send."""

    follower: Follower  # set once made, as it calls back into this

    def __init__(self, roots: list[str], tracker: EventTracker, state: WatchState | None, notifier: Notifier) -> None:
        self.roots = roots
        self.tracker = tracker
        self.state = state
        self.notifier = notifier
        self.first_look = state is None or state.runs is None

    def on_pass(self, done: Pass) -> None:
        if done.error is not None:
            log.error("%s", done.error)
        if done.loaded:
            self._loaded()
        for event in done.events:
            log.info("%s: %s: %s (%s)", event.kind, event.name, event.what, event.detail)
        if self.state is not None and (done.events or self.tracker.changed):
            self.state.save(self.tracker.memory, done.events)
        self.notifier.add(done.events)

    def _loaded(self) -> None:
        session = self.follower.session
        with self.follower.lock:
            count = len(session.runs())
        runs = f"{count} run{'s' if count != 1 else ''}"
        if self.first_look:
            log.info(
                "first look: %s taken as they are (`rlhf-top --once %s` lists them); what happens from now on is sent",
                runs,
                shlex.join(self.roots),
            )
        else:
            log.info("%s found; what changed since the last stop is sent", runs)
