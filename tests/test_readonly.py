"""Read-only guarantee: rlhf-top never changes anything under the roots it watches.

Every file and directory under the roots is fingerprinted (type and mode, size, mtime, SHA-256 of
the content) before and after a full TUI session that uses every feature, exports included (to a
directory outside the roots, once more over the first report, and once at a path inside a run,
which must be refused), and before and after each headless command. A directory's mtime changes
when an entry is created or removed in it, so even a temporary file made and deleted is caught.
The roots hold the real TRL runs, the tracker stores real runs wrote (W&B logs, a Trackio and an
MLflow SQLite database, an MLflow file store) and the other trainers' logs; the headless commands
also run while a writer holds the Trackio database open in WAL mode with rows not yet
checkpointed, when SQLite would create or touch `-wal`/`-shm` files if it were let.

Remote roots too: the same runs served by a real `sshd` and uploaded to an S3 server are followed by
a TUI session and the headless commands; the files behind the sshd are fingerprinted as above, the
S3 objects by key, size, ETag, modification time and SHA-256 of their content, before and after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

import needs
from rlhf_tui.ui.live import LoopSettings
from rlhf_tui.ui.screens.dialogs import ConfirmScreen, ExportScreen, HelpScreen
from rlhf_tui.ui.screens.run_view import RunScreen
from rlhf_tui.ui.app import RlhfTop
from rlhf_tui.ui.widgets.runs_table import RunsTable

FIXTURES = Path(__file__).parent / "fixtures"
REAL_RUNS = FIXTURES / "real_runs"
RUNS_IN_ROOTS = 16  # 4 real TRL runs, 6 tracker runs, 6 other trainers' logs


def fingerprint(root: Path) -> dict[str, tuple]:
    found = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            digest = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            found[os.path.relpath(path, root)] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return found


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    """The four real TRL runs, a crashed one among them, tracker stores and other trainers' logs."""
    target = tmp_path / "runs"
    shutil.copytree(REAL_RUNS, target)
    shutil.copytree(FIXTURES / "trackers" / "launch", target / "trackers")
    shutil.copytree(FIXTURES / "other_trainers", target / "other_trainers")
    return target


async def wait_for(pilot, condition, timeout: float = 20.0) -> None:
    """Let the app run until `condition()` holds (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not get there"
        await pilot.pause(0.05)


async def test_a_full_tui_session_changes_nothing_under_the_roots(roots, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    before = fingerprint(roots)
    app = RlhfTop(LoopSettings(roots=[str(roots)], poll_seconds=0.2))
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.home.query_one(RunsTable)
        await wait_for(pilot, lambda: app.loaded and len(table.order) == RUNS_IN_ROOTS)
        await pilot.press("j", "j", "j", "k", "down", "up", "end", "home", "G", "g", "pagedown", "pageup")
        await pilot.press("s", "s", "S", "n", "n", "tab", "tab", "shift+tab")
        await pilot.press("slash", *"dpo|grpo", "enter")
        await pilot.press("escape")
        await pilot.press("space", "j", "space", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("x", "l", "plus", "minus", "down", "x", "l", "escape")
        await pilot.press("home", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("down", "down", "escape")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "p", "p", "r", "c")

        await pilot.press("slash", *"dpo_crash", "enter", "c", "e")
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("enter")
        report = out / "dpo_crash-report.md"
        await wait_for(pilot, report.exists)
        await pilot.press("e", "enter")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.press("e")
        app.screen.query_one("#export-path").value = str(roots / "dpo_crash" / "report.md")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("escape", "ctrl+p")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause(0.5)  # a few more reader passes
        await pilot.press("q")
    assert fingerprint(roots) == before
    assert sorted(p.name for p in out.iterdir()) == ["dpo_crash-report.md"]


@pytest.mark.parametrize(
    "args",
    [["--once"], ["--json"], ["report", "dpo_crash"], ["report", "dpo_crash", "-o", "OUT"]],
    ids=["once", "json", "report", "report-o"],
)
def test_headless_commands_change_nothing_under_the_roots(roots, tmp_path, args):
    before = fingerprint(roots)
    args = [str(roots / a) if a == "dpo_crash" else str(tmp_path / "report.md") if a == "OUT" else a for a in args]
    if args[0] != "report":
        args.append(str(roots))
    result = subprocess.run([sys.executable, "-m", "rlhf_tui", *args], capture_output=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
    assert fingerprint(roots) == before


def test_watch_keeps_its_state_outside_the_roots_and_changes_nothing_under_them(roots, tmp_path):
    needs.module("apprise", "pip install 'rlhf-top[notify]'")
    before = fingerprint(roots)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    command = [sys.executable, "-m", "rlhf_tui", "watch", str(roots), "--notify", "json://127.0.0.1:9/hook"]
    # the first look, then a restart that reads the state back
    for expected in (f"first look: {RUNS_IN_ROOTS} runs", f"{RUNS_IN_ROOTS} runs found"):
        log = tmp_path / "watch.log"
        with log.open("w") as output:
            watcher = subprocess.Popen(command, env=env, stderr=output)
        deadline = time.monotonic() + 120
        while expected not in log.read_text():
            assert time.monotonic() < deadline and watcher.poll() is None, log.read_text()
            time.sleep(0.05)
        watcher.terminate()
        assert watcher.wait(timeout=30) == 0
    assert fingerprint(roots) == before
    assert [p.suffix for p in sorted((tmp_path / "state" / "rlhf-top").iterdir())] == [".json", ".lock"]


def test_headless_commands_change_nothing_while_a_writer_holds_a_wal_database(roots):
    database = roots / "trackers" / "trackio" / "huggingface.db"
    writer = sqlite3.connect(database)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("UPDATE configs SET created_at = created_at")
    writer.commit()
    try:
        assert {"huggingface.db-wal", "huggingface.db-shm"} <= set(os.listdir(database.parent))
        before = fingerprint(roots)
        for args in (["--json"], ["--once"]):
            result = subprocess.run([sys.executable, "-m", "rlhf_tui", *args, str(roots)], capture_output=True, timeout=120)
            assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
        assert fingerprint(roots) == before
    finally:
        writer.close()


def s3_fingerprint(client, bucket: str) -> dict[str, tuple]:
    found = {}
    for key, info in client.find(bucket, detail=True, withdirs=True).items():
        digest = hashlib.sha256(client.cat_file(key)).hexdigest() if info["type"] == "file" else None
        found[key] = (info["type"], info.get("size"), info.get("ETag"), str(info.get("LastModified")), digest)
    return found


async def test_remote_roots_are_only_read_by_a_tui_session_and_the_headless_commands(roots, sshd, s3, tmp_path, monkeypatch):
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    client = s3.client()
    client.mkdir("readonly")
    client.put(f"{roots}/", "readonly/runs", recursive=True)
    ssh_root, s3_root = sshd.url(roots), "s3://readonly/runs"
    served, stored = fingerprint(roots), s3_fingerprint(client, "readonly")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    options = {**{f"ssh.{k}": v for k, v in sshd.options().items()}, **{f"s3.{k}": v for k, v in s3.options().items()}}
    settings = LoopSettings(roots=[ssh_root, s3_root], poll_seconds=0.2, storage_options=options)
    app = RlhfTop(settings)
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.home.query_one(RunsTable)
        # 12 runs on each root: the 4 tracker runs kept in databases and an MLflow file store are not read remotely
        await wait_for(pilot, lambda: app.loaded and len(table.order) == 2 * (RUNS_IN_ROOTS - 4), timeout=60)
        await pilot.press("j", "j", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("x", "l", "escape", "r", "p", "p", "e", "enter")
        await wait_for(pilot, lambda: any(out.iterdir()))
        await pilot.pause(1.0)  # a few more passes over both roots
        await pilot.press("q")
    env = {**sshd.client_env(), "AWS_ACCESS_KEY_ID": s3.key, "AWS_SECRET_ACCESS_KEY": s3.secret}
    option = ["--storage-option", f"s3.endpoint_url={s3.endpoint}"]
    for args in (["--once"], ["--json"], ["report", f"{ssh_root}/dpo_crash"], ["report", *option, f"{s3_root}/dpo_crash"]):
        if args[0] != "report":
            args = [*args, *option, ssh_root, s3_root]
        result = subprocess.run([sys.executable, "-m", "rlhf_tui", *args], capture_output=True, env=env, timeout=120)
        assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
    assert fingerprint(roots) == served
    assert s3_fingerprint(client, "readonly") == stored
