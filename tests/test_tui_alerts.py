"""The TUI reaching a user who is not looking: the bell and a desktop notification (OSC 9 or OSC 777)
in the bytes `rlhf-top` writes to a real pseudo-terminal, none with --quiet, and --notify."""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

import needs
from alert_runs import crash, learning, write_run
from receiver import Receiver
from rlhf_tui import notify
from rlhf_tui.notify import Notifier
from rlhf_tui.ui.app import RlhfTop
from rlhf_tui.ui.desktop import notification
from rlhf_tui.ui.live import LoopSettings
from tui import Notifications, wait_for

EVIL = "dpo\x1b]0;owned\x07-evil"  # a run directory whose name tries to set the terminal's title
OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


class Terminal:
    """`rlhf-top ARGS` in a 120x30 pty; everything it writes is kept."""

    def __init__(self, args: list[str], term: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            env = {k: v for k, v in os.environ.items() if k != "TMUX"}
            env.update(TERM=term, COLUMNS="120", LINES="30")
            os.execvpe(sys.executable, [sys.executable, "-m", "rlhf_tui", *args], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        self.output = ""
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while self.running:
            if not select.select([self.fd], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            with self.lock:
                self.output += chunk.decode("utf-8", "replace")

    def text(self) -> str:
        with self.lock:
            return self.output

    def wait(self, condition, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"rlhf-top never got there; it wrote:\n{self.text()[-3000:]!r}")
            time.sleep(0.05)

    def stop(self) -> None:
        os.write(self.fd, b"q")
        deadline = time.monotonic() + 15
        while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
            time.sleep(0.05)
        self.running = False
        self.thread.join(timeout=5)
        os.close(self.fd)


@pytest.fixture
def terminals():
    started = []

    def start(args: list[str], term: str = "xterm-256color") -> Terminal:
        terminal = Terminal(args, term)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        if terminal.running:
            terminal.stop()


def crash_evil_run(root: Path) -> None:
    write_run(root / EVIL, learning(20), time.time() - 20)
    crash(root / EVIL, 20, "gpu-1", "RuntimeError: \x1b]52;c;cGF5bG9hZA==\x07boom")


def loaded(text: str) -> bool:
    return "watching for new ones" in text


def bells(text: str) -> int:
    """BEL characters that are not the end of an OSC sequence."""
    return OSC.sub("", text).count("\x07")


@pytest.mark.parametrize(
    ("term", "sequence"),
    [
        ("xterm-256color", "\x1b]9;[rlhf-top] dpo-evil: Crashed (exception): RuntimeError: boom\x07"),
        ("foot", "\x1b]777;notify;[rlhf-top] dpo-evil: Crashed (exception);RuntimeError: boom\x07"),
    ],
)
def test_a_run_that_crashes_rings_the_bell_and_sends_one_clean_desktop_notification(tmp_path, terminals, term, sequence):
    root = tmp_path / "runs"
    root.mkdir()
    terminal = terminals([str(root)], term)
    terminal.wait(loaded)
    before = len(terminal.text())
    crash_evil_run(root)
    terminal.wait(lambda text: sequence in text)
    terminal.wait(lambda text: "Crashed" in text[before:])
    after = terminal.text()[before:]
    assert bells(after) == 1
    assert after.count("\x1b]9;") + after.count("\x1b]777;") == 1
    assert "owned" not in after and "\x1b]0;" not in after and "]52;" not in after


def test_quiet_sends_neither_bell_nor_notification(tmp_path, terminals):
    root = tmp_path / "runs"
    root.mkdir()
    terminal = terminals([str(root), "--quiet"])
    terminal.wait(loaded)
    before = len(terminal.text())
    crash_evil_run(root)
    terminal.wait(lambda text: "Crashed" in text[before:])
    after = terminal.text()[before:]
    assert bells(after) == 0 and "\x1b]9;" not in after and "\x1b]777;" not in after


def test_notify_sends_the_tuis_events_to_the_url_too(tmp_path, terminals):
    needs.module("apprise", "pip install 'rlhf-top[notify]'")
    root = tmp_path / "runs"
    root.mkdir()
    with Receiver() as receiver:
        terminal = terminals([str(root), "--quiet", "--notify", receiver.apprise_url])
        terminal.wait(loaded)
        crash_evil_run(root)
        (sent,) = receiver.wait_for(1)
        terminal.stop()
        assert len(receiver.messages) == 1
    assert sent["title"] == "[rlhf-top] dpo-evil: Crashed (exception)"
    assert "run: dpo-evil\n" in sent["message"]
    escape_free = str(root / "dpo\\x1b]0;owned\\x07-evil")
    assert f"open: rlhf-top report $'{escape_free}'" in sent["message"]  # the real name, as bash reads it back
    assert "\x1b" not in sent["message"]


async def test_a_notify_delivery_that_fails_is_shown_as_a_toast(tmp_path, monkeypatch):
    monkeypatch.setattr(notify, "COLLECT_SECONDS", 0.05)

    class Unreachable:
        label = "json://127.0.0.1:9/hook"

        def send(self, message) -> bool:
            return False

    root = tmp_path / "runs"
    root.mkdir()
    notifier = Notifier([Unreachable()])
    app = RlhfTop(LoopSettings(roots=[str(root)], poll_seconds=0.2), notifier=notifier)
    try:
        async with app.run_test() as pilot:
            notices = Notifications(app)
            await wait_for(pilot, lambda: app.loaded)
            crash_evil_run(root)
            await wait_for(pilot, lambda: notices.any("could not send '[rlhf-top] dpo-evil: Crashed (exception)'"))
    finally:
        notifier.close(timeout=5)


def test_the_desktop_sequence_holds_no_escape_from_its_text_and_suits_the_terminal():
    hostile = "a\x1b]52;c;eA==\x07b\x9d0;x\x9cc\x07d\x1b\\e;f\nnext"
    for term in ("xterm-256color", "foot"):
        sequence = notification(hostile, hostile, {"TERM": term})
        inner = sequence[2:-1]  # between "ESC ]" and the BEL that ends it
        assert not any(ch in inner for ch in "\x1b\x07\x9c\x9d\n")
    assert notification("t;x", "b;y", {"TERM": "foot"}) == "\x1b]777;notify;t,x;b;y\x07"
    assert notification("4;1;50", "", {"TERM": "xterm"}) == "\x1b]9;rlhf-top: 4;1;50\x07"
    wrapped = notification("t", "b", {"TERM": "xterm-256color", "TMUX": "/tmp/tmux-0/default,1,0"})
    assert wrapped == "\x1bPtmux;\x1b\x1b]9;t: b\x07\x1b\\"
