"""The Textual terminal UI, a thin view over the session; the App is in app.py.

Textual reads its colour settings from the environment when it is first imported, so `launch`
applies `--color-system` before importing it.
"""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack


def apply_color_system(color_system: str) -> None:
    """`--color-system`: none means monochrome (as NO_COLOR does); auto leaves it to the terminal."""
    if color_system == "none":
        os.environ["NO_COLOR"] = "1"
    elif color_system != "auto":
        os.environ["TEXTUAL_COLOR_SYSTEM"] = color_system


def launch(roots: list[str], args: argparse.Namespace) -> int:
    """Run the TUI over `roots` (or the live demo) until the user quits."""
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
            storage_options=getattr(args, "storage_options", {}),
        )
        app = RlhfTop(settings)
        app.run()
        return app.return_code or 0
