"""`rlhf-top serve` in a real browser: the page loads, shows the runs, and keys reach the app."""

import os
import shutil
import time
from pathlib import Path

import needs
from browser import browser_page, served
from conftest import REAL_RUNS

needs.module("textual_serve", "pip install 'rlhf-top[serve]'")
needs.module("playwright.sync_api", "pip install playwright; the browser is the system's chromium")
needs.command("chromium", "apt-get install chromium")

NAMES = sorted(p.name for p in REAL_RUNS.iterdir() if p.is_dir())


def app_processes(root) -> list[int]:
    """Processes whose command line names `root`: the server's app, one per browser tab."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                if str(root).encode() in file.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_the_served_app_shows_the_runs_in_a_browser_and_takes_key_presses(tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(REAL_RUNS, root)
    with served([root], tmp_path / "serve.log") as url, browser_page(url) as page:
        page.wait_for_screen(lambda text: all(name in text for name in NAMES) and "sort: status" in text)
        page.page.keyboard.press("s")
        page.wait_for_screen(lambda text: "sort: name" in text)
        page.page.wait_for_timeout(500)
        shot = tmp_path / "serve.png"
        page.page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    deadline = time.monotonic() + 30
    while app_processes(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert app_processes(root) == []  # the server took its app down with it
    assert "Serving" in (tmp_path / "serve.log").read_text()


def test_export_in_a_browser_is_a_download_and_writes_nothing_on_the_server(tmp_path):
    """Whoever reaches the page gets the report in their browser; no path on the server is asked for."""
    root = tmp_path / "runs"
    shutil.copytree(REAL_RUNS / "dpo_stuck", root / "dpo_stuck")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with served([root], tmp_path / "serve.log") as url, browser_page(url) as page:
        page.wait_for_screen(lambda text: "dpo_stuck" in text and "sort: status" in text)
        with page.page.expect_download(timeout=60_000) as download_info:
            page.page.keyboard.press("e")
        download = download_info.value
        saved = tmp_path / "downloaded.md"
        download.save_as(saved)
    assert download.suggested_filename == "dpo_stuck-report.md"
    text = saved.read_text()
    assert text.startswith("## RLHF Run Diagnostic Report") and "dpo_stuck" in text
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert set(after) - set(before) == {Path("serve.log"), Path("downloaded.md")}
