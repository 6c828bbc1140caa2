"""A desktop notification through the terminal: an escape sequence the terminal turns into a system
notification, also over SSH since it travels with the screen.

Two conventions, and a terminal that knows both would show both, so one is chosen from $TERM: OSC 777
(`notify;title;body`) for foot and urxvt, OSC 9 (iTerm2, kitty, WezTerm, Ghostty, Windows Terminal)
for the rest. Inside tmux the sequence is wrapped for tmux to pass on (with `allow-passthrough on`).
Terminals that know neither ignore it. The text comes from run directories: it goes through
`one_line`, which leaves no escape or control character to end the sequence early or start another.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rlhf_tui.core.text import one_line

TITLE_LIMIT = 120
BODY_LIMIT = 300
_OSC_777_TERMS = ("foot", "rxvt")


def notification(title: str, body: str, environ: Mapping[str, str] = os.environ) -> str:
    title = one_line(title, TITLE_LIMIT)
    body = one_line(body, BODY_LIMIT)
    if environ.get("TERM", "").startswith(_OSC_777_TERMS):
        sequence = f"\x1b]777;notify;{title.replace(';', ',')};{body}\x07"
    else:
        text = f"{title}: {body}" if body else title
        # ConEmu and Windows Terminal read "OSC 9 ; <number> ;" as a command of their own.
        if text[:1].isdigit():
            text = f"rlhf-top: {text}"
        sequence = f"\x1b]9;{text}\x07"
    if environ.get("TMUX"):
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence
