"""`rlhf-top watch` end to end: the real command in a subprocess, Apprise's JSON webhook (json://) pointed
at a receiver on 127.0.0.1, runs written while it watches, SIGTERM and SIGKILL as systemd and the OOM
killer send them. Its state goes to tmp_path (XDG_STATE_HOME)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import needs
from alert_runs import crash, learning, message_fields, parked, write_run
from receiver import Receiver, free_port

from rlhf_tui.events import KINDS
from rlhf_tui.watch_state import state_file

needs.module("apprise", "pip install 'rlhf-top[notify]'")

HOST = socket.gethostname()


class Watcher:
    """`rlhf-top watch ROOT --notify URL ...` running in the background, its log kept in a file."""

    count = 0

    def __init__(self, tmp_path: Path, root: Path, *args: str) -> None:
        Watcher.count += 1
        self.log = tmp_path / f"watch-{Watcher.count}.log"
        self.out = tmp_path / f"watch-{Watcher.count}.out"
        env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
        with self.log.open("w") as log, self.out.open("w") as out:
            command = [sys.executable, "-m", "rlhf_tui", "watch", str(root), *args]
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=log)

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, text: str, count: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(text) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"never logged {text!r} {count} time(s):\n{self.text()}")
            time.sleep(0.05)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=30)


@pytest.fixture
def watchers(tmp_path):
    """Start watchers with `watchers(root, *args)`; any still running at the end are killed."""
    started = []

    def start(root: Path, *args: str) -> Watcher:
        watcher = Watcher(tmp_path, root, *args)
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        if watcher.process.poll() is None:
            watcher.process.kill()
            watcher.process.wait()


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    return path


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def test_a_crash_a_stall_a_loss_parked_at_ln2_and_a_finish_each_send_one_message_in_order(root, tmp_path, watchers):
    with Receiver() as receiver:
        watcher = watchers(root, "--notify", receiver.apprise_url)
        watcher.wait_log("first look: 0 runs")
        now = time.time()
        write_run(root / "dpo-crash", learning(20), now - 20)
        crash(root / "dpo-crash", 20, "gpu-node-7", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
        receiver.wait_for(1)
        write_run(root / "dpo-stall", learning(30), now - 3600)
        receiver.wait_for(2)
        write_run(root / "dpo-ln2", parked(60), now - 60)
        receiver.wait_for(3)
        write_run(root / "dpo-done", learning(40), now - 40, footer=True)
        receiver.wait_for(4)
        assert watcher.stop() == 0
        messages = receiver.messages
    assert [(m["title"], m["type"]) for m in messages] == [
        ("[rlhf-top] dpo-crash: Crashed (oom)", "failure"),
        ("[rlhf-top] dpo-stall: Stalled", "warning"),
        ("[rlhf-top] dpo-ln2: Loss stuck at its no-signal value", "warning"),
        ("[rlhf-top] dpo-done: Finished", "success"),
    ]
    fields = [message_fields(m) for m in messages]
    assert fields[0] == {
        "run": "dpo-crash",
        "host": "gpu-node-7",
        "trainer": "DPO",
        "step": "20",
        "status": "Crashed (oom)",
        "detail": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "open": f"rlhf-top report {root / 'dpo-crash'}",
    }
    assert fields[1] == {
        "run": "dpo-stall",
        "host": HOST,
        "trainer": "DPO",
        "step": "30",
        "status": "Stalled",
        "detail": "no new step for 60 min after step 30",
        "open": f"rlhf-top report {root / 'dpo-stall'}",
    }
    assert fields[2]["status"] == "Unstable" and fields[2]["step"] == "60"
    assert fields[2]["detail"].startswith("[HIGH] Loss stuck at its no-signal value: The loss has stayed at 0.6931")
    assert fields[3]["detail"] == "finished with no medium or worse finding active"
    assert files_under(root) == {
        "dpo-crash", "dpo-crash/metrics.jsonl", "dpo-crash/postmortem.json",
        "dpo-stall", "dpo-stall/metrics.jsonl", "dpo-ln2", "dpo-ln2/metrics.jsonl", "dpo-done", "dpo-done/metrics.jsonl",
    }  # fmt: skip
    state = tmp_path / "state" / "rlhf-top"
    assert {p.suffix for p in state.iterdir()} == {".json", ".lock"}


def test_a_watcher_killed_and_restarted_sends_nothing_twice_and_what_happened_meanwhile_once(root, watchers):
    with Receiver() as receiver:
        url = receiver.apprise_url
        first = watchers(root, "--notify", url)
        first.wait_log("first look")
        write_run(root / "a", learning(20), time.time() - 20)
        crash(root / "a", 20, "gpu-1", "RuntimeError: boom")
        receiver.wait_for(1)
        first.wait_log("sent '[rlhf-top] a: Crashed (exception)'")
        first.stop(signal.SIGKILL)
        write_run(root / "b", learning(40), time.time() - 40, footer=True)  # while nobody watches
        second = watchers(root, "--notify", url)
        second.wait_log("sent '[rlhf-top] b: Finished'")
        assert second.stop() == 0
        third = watchers(root, "--notify", url)
        third.wait_log("2 runs found; what changed since the last stop is sent")
        assert third.stop() == 0
        titles = [m["title"] for m in receiver.messages]
    assert titles == ["[rlhf-top] a: Crashed (exception)", "[rlhf-top] b: Finished"]


def test_an_unreachable_receiver_is_retried_and_logged_while_the_watcher_keeps_watching(root, watchers):
    port = free_port()
    watcher = watchers(root, "--notify", f"json://127.0.0.1:{port}/hook")
    watcher.wait_log("first look")
    write_run(root / "a", learning(20), time.time() - 20)
    crash(root / "a", 20, "gpu-1", "RuntimeError: boom")
    watcher.wait_log("could not send '[rlhf-top] a: Crashed (exception)' to json://127.0.0.1", count=2)
    assert "(attempt 1); retrying in 2 s" in watcher.text() and "(attempt 2); retrying in 4 s" in watcher.text()
    write_run(root / "b", learning(40), time.time() - 40, footer=True)
    watcher.wait_log("finish: b: Finished")
    with Receiver(port) as receiver:
        receiver.wait_for(2)
        assert watcher.stop() == 0
        titles = [m["title"] for m in receiver.messages]
    assert titles == ["[rlhf-top] a: Crashed (exception)", "[rlhf-top] b: Finished"]
    assert watcher.process.returncode == 0


def test_what_could_not_be_sent_before_a_kill_is_sent_once_after_the_restart(root, watchers):
    port = free_port()
    url = f"json://127.0.0.1:{port}/hook"
    first = watchers(root, "--notify", url)
    first.wait_log("first look")
    write_run(root / "a", learning(20), time.time() - 20)
    crash(root / "a", 20, "gpu-1", "RuntimeError: boom")
    first.wait_log("could not send")
    first.stop(signal.SIGKILL)
    with Receiver(port) as receiver:
        second = watchers(root, "--notify", url)
        second.wait_log("1 event(s) not sent before the last stop: sending them now")
        second.wait_log("sent '[rlhf-top] a: Crashed (exception)'")
        assert second.stop() == 0
        third = watchers(root, "--notify", url)
        third.wait_log("1 run found")
        assert third.stop() == 0
        titles = [m["title"] for m in receiver.messages]
    assert titles == ["[rlhf-top] a: Crashed (exception)"]


def test_dry_run_prints_the_messages_and_keeps_no_state(root, tmp_path, watchers):
    watcher = watchers(root, "--dry-run")
    watcher.wait_log("first look")
    write_run(root / "a", learning(20), time.time() - 20)
    crash(root / "a", 20, "gpu-1", "RuntimeError: boom")
    watcher.wait_log("sent '[rlhf-top] a: Crashed (exception)' to standard output (dry run)")
    assert watcher.stop(signal.SIGINT) == 0
    printed = watcher.out.read_text()
    assert printed.startswith("--- failure: [rlhf-top] a: Crashed (exception)\nrun: a\nhost: gpu-1\n")
    assert f"open: rlhf-top report {root / 'a'}\n" in printed
    assert not (tmp_path / "state").exists()


def test_a_second_watcher_of_the_same_runs_and_destinations_is_refused(root, watchers):
    url = f"json://127.0.0.1:{free_port()}/hook"
    first = watchers(root, "--notify", url)
    first.wait_log("first look")
    second = watchers(root, "--notify", url)
    assert second.process.wait(timeout=30) == 2
    assert "another rlhf-top watch with the same roots and --notify runs" in second.text()
    assert first.stop() == 0


def test_without_apprise_watch_says_what_to_install(root):
    code = (
        "import sys; sys.modules['apprise'] = None; from rlhf_tui.cli import main;"
        f"sys.exit(main(['watch', {str(root)!r}, '--notify', 'json://127.0.0.1:9/hook']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "rlhf-top watch: sending notifications needs Apprise: pip install 'rlhf-top[notify]'" in result.stderr


def test_a_url_apprise_does_not_know_is_a_usage_error(root):
    result = subprocess.run(
        [sys.executable, "-m", "rlhf_tui", "watch", str(root), "--notify", "nosuchservice://x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not a notification URL Apprise knows: nosuchservice://x" in result.stderr


def test_a_watch_is_the_same_watch_from_any_directory_and_however_its_roots_are_written(tmp_path, monkeypatch):
    """One state (and one lock) per watch: started from elsewhere, it is not a second watcher."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    destinations = ["json://127.0.0.1:9/hook"]
    monkeypatch.chdir(tmp_path)
    here = state_file(["runs", "ssh://gpu-a/home/me/runs/"], destinations, KINDS)
    monkeypatch.chdir("/")
    there = state_file([str(tmp_path / "runs"), "ssh://gpu-a/home/me//runs"], destinations, KINDS)
    assert here == there
    assert state_file(["ssh://gpu-b/home/me/runs"], destinations, KINDS) != state_file(["ssh://gpu-a/home/me/runs"], destinations, KINDS)



def test_destinations_can_come_from_the_environment_instead_of_the_command_line(root, watchers, monkeypatch):
    """URLs with passwords and tokens stay out of the argument list every user can read in `ps`."""
    with Receiver() as receiver:
        monkeypatch.setenv("RLHF_TOP_NOTIFY", receiver.apprise_url)
        watcher = watchers(root)
        watcher.wait_log("first look: 0 runs")
        assert receiver.apprise_url.encode() not in Path(f"/proc/{watcher.process.pid}/cmdline").read_bytes()
        write_run(root / "a", learning(5), time.time() - 5)
        crash(root / "a", 5, HOST, "RuntimeError: boom")
        receiver.wait_for(1)
        assert watcher.stop() == 0
        assert [m["title"] for m in receiver.messages] == ["[rlhf-top] a: Crashed (exception)"]
