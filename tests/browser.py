"""`rlhf-top serve` in a real headless browser: the system's chromium driven by Playwright.

    with served([root]) as url, browser_page(url) as page:
        page.wait_for_screen(lambda text: "dpo_crash" in text)

Playwright's own browsers are never downloaded: chromium is Debian's (`apt-get install chromium`).
Requests anywhere but the server (textual-serve's page asks Google for a font) are refused, so the
test needs no network. What the app draws reaches the page over a websocket as terminal output; the
page keeps it, with escape sequences removed, as `screen_text`.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from receiver import free_port

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
_ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


@contextmanager
def served(roots: list[Path], log: Path) -> Iterator[str]:
    """`rlhf-top serve ROOTS` on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "rlhf_tui", "serve", *map(str, roots), "--port", str(port)]
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"rlhf-top serve did not listen:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class Page:
    """A browser tab on the served app, with the terminal output it received."""

    def __init__(self, page, base_url: str) -> None:
        self.page = page
        self.chunks: list[str] = []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base_url) else route.abort())
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: bytes | str) -> None:
        self.chunks.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload)

    def screen_text(self) -> str:
        return _ESCAPES.sub("", "".join(self.chunks))

    def wait_for_screen(self, condition: Callable[[str], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.screen_text()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed it; it got:\n{self.screen_text()[-3000:]}")
            self.page.wait_for_timeout(50)


@contextmanager
def browser_page(url: str, size: tuple[int, int] = (1280, 720)) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page = Page(tab, url)
            tab.goto(url)
            tab.wait_for_selector("body.-first-byte", timeout=60_000)  # textual-serve's "the app has drawn"
            # Keys go to the terminal, and the app, told it has the focus, draws its footer of keys.
            tab.focus("textarea.xterm-helper-textarea")
            yield page
        finally:
            browser.close()
