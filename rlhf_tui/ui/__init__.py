"""The Textual terminal UI, a thin view over the session; the App is in app.py.

Textual reads its colour settings from the environment when it is first imported, so `launch`
applies `--color-system` before importing it.
"""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack

from rlhf_tui.notify import Notifier, Transport


def apply_color_system(color_system: str) -> None:
    """`--color-system`: none means monochrome (as NO_COLOR does); auto leaves it to the terminal."""
    if color_system == "none":
        os.environ["NO_COLOR"] = "1"
    elif color_system != "auto":
        os.environ["TEXTUAL_COLOR_SYSTEM"] = color_system


def launch(roots: list[str], args: argparse.Namespace, destinations: list[Transport]) -> int:
    """Run the TUI over `roots` (or the live demo) until the user quits; events also go to `destinations`."""
    apply_color_system(args.color_system)
    from rlhf_tui.ui.app import RlhfTop
    from rlhf_tui.ui.live import LoopSettings

    with ExitStack() as stack:
        if args.demo:
            from rlhf_tui.demo import LiveDemo

            roots = [stack.enter_context(LiveDemo())]
        settings = LoopSettings(
            roots=roots,
            depth=args.depth,
            rules_dir=args.rules,
            poll_seconds=args.poll,
            storage_options=args.storage_options,
        )
        notifier = Notifier(destinations) if destinations else None
        app = RlhfTop(settings, quiet=args.quiet, notifier=notifier)
        try:
            app.run()
        finally:
            if notifier is not None:
                notifier.close()
        return app.return_code or 0
