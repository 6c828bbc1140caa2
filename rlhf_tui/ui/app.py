"""`rlhf-top` in a terminal: set up colours, then run the Textual app until the user quits.

Textual reads its colour settings from the environment when it is first imported, so this module
imports it only after `--color-system` has been applied (the app itself is in `top.py`).
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
    apply_color_system(args.color_system)
    from rlhf_tui.ui.live import LoopSettings
    from rlhf_tui.ui.top import RlhfTop

    with ExitStack() as stack:
        if args.demo:
            from rlhf_tui.demo import LiveDemo

            roots = [stack.enter_context(LiveDemo())]
        settings = LoopSettings(roots=roots, depth=args.depth, rules_dir=args.rules, poll_seconds=args.poll)
        app = RlhfTop(settings)
        app.run()
        return app.return_code or 0
