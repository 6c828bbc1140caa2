"""Runs on other machines: `ssh://` and `s3://` roots against real servers on 127.0.0.1.

An OpenSSH `sshd` (its own host key, user key, configs and known_hosts, all in the test's tmp dir)
serves the test's tmp dir; moto's S3 server checks every request's signature. A writer appends to
runs on each while the monitor follows them; the servers are stopped and restarted, connections cut
mid-read, keys and credentials refused: every record arrives once and in order, and each failure is
one line naming its cause and fix, after which the root comes back by itself. Waits are liveness
bounds, never timing assertions.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import needs
from alert_runs import crash, learning, write_run
from remote_servers import ALIAS, Relay, Sshd, sshd_path

from rlhf_tui import follow
from rlhf_tui.core import remote as remote_module
from rlhf_tui.core import runlog
from rlhf_tui.core.filesystem import RemoteFS, explain
from rlhf_tui.core.monitor import Monitor
from rlhf_tui.core.remote import RemoteSettings
from rlhf_tui.events import EventTracker

POLL = 0.1
_buckets = itertools.count()


def ptt_header() -> str:
    return runlog.line(runlog.header("dpo", "run", "2026-11-26T01:00:00+00:00"))


def ptt_step(step: int, pad: int = 0) -> str:
    metrics = {"dpo_loss": 0.7 - step * 1e-4, "rewards_chosen": 0.1}
    if pad:
        metrics["note"] = "x" * pad
    return runlog.line(runlog.step(step, "2026-11-26T01:00:00+00:00", metrics))


def wait(condition, monitor: Monitor | None = None, timeout: float = 60.0, what: str = "the condition") -> None:
    """Poll the monitor until `condition()` holds (a liveness bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never reached: {what}"
        if monitor is not None:
            monitor.poll([])
        time.sleep(0.02)


def steps_of(monitor: Monitor, name: str) -> list[int]:
    for run in monitor.visible_runs():
        if run.name == name and run.source is not None:
            return run.source.series["dpo_loss"].steps.tolist()
    return []


def records_fed(monitor: Monitor, name: str) -> int:
    """Every record any reader handed over for the run, duplicates included (the series would drop them)."""
    return sum(data.records for run in monitor.visible_runs() if run.name == name for data in run.data.values())


def state(monitor: Monitor, index: int = 0) -> str:
    return monitor.root_status()[index].state


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(remote_module, "RETRY_FIRST_SECONDS", 0.1)
    monkeypatch.setattr(remote_module, "RETRY_MAX_SECONDS", 0.5)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def bucket_name() -> str:
    return f"runs-{os.getpid()}-{next(_buckets)}"


class Writer(threading.Thread):
    """Appends `steps` records to each run, a few at a time; `append(path, text)` says how."""

    def __init__(self, append, runs: list[str], steps: int, every: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.append, self.runs, self.steps, self.every = append, runs, steps, every
        self.written = 0
        self.failed: BaseException | None = None

    def run(self) -> None:
        try:
            for first in range(1, self.steps + 1, 5):
                for run in self.runs:
                    self.append(run, "".join(ptt_step(s) for s in range(first, min(first + 5, self.steps + 1))))
                self.written = min(first + 4, self.steps)
                time.sleep(self.every)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failed = exc


# --- ssh -------------------------------------------------------------------------------------


def local_runs(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "metrics.jsonl").write_text(ptt_header())


def append_local(root: Path):
    def append(name: str, text: str) -> None:
        with open(root / name / "metrics.jsonl", "a") as handle:
            handle.write(text)

    return append


def test_an_ssh_root_is_followed_live_every_record_once_and_in_order_across_an_sshd_restart(sshd, tmp_path):
    root = tmp_path / "runs"
    names = [f"dpo-{i}" for i in range(3)]
    local_runs(root, names)
    monitor = Monitor([sshd.url(root)], remote=RemoteSettings(sshd.options(), POLL))
    try:
        monitor.scan()
        monitor.catch_up()
        assert state(monitor) == "connected"
        assert sorted(run.name for run in monitor.visible_runs()) == names
        writer = Writer(append_local(root), names, steps=300)
        writer.start()
        wait(lambda: writer.written >= 60, monitor, what="the writer's first records")
        wait(lambda: steps_of(monitor, names[0]), monitor, what="records read over ssh")
        sshd.stop()
        wait(lambda: "connection refused" in (monitor.root_status()[0].message or ""), monitor, what="the root noticing")
        assert state(monitor) == "retrying"
        sshd.start()
        writer.join()
        assert writer.failed is None
        wait(lambda: all(steps_of(monitor, n) == list(range(1, 301)) for n in names), monitor, what="every record")
        assert state(monitor) == "connected"
        for name in names:
            assert records_fed(monitor, name) == 300
            run = next(r for r in monitor.visible_runs() if r.name == name)
            assert not any("truncated" in note for note in run.notes)
    finally:
        monitor.close()


def test_a_connection_cut_mid_read_resumes_where_it_stopped(sshd, tmp_path):
    root = tmp_path / "runs"
    names = [f"big-{i}" for i in range(4)]
    for name in names:
        (root / name).mkdir(parents=True)
        with open(root / name / "metrics.jsonl", "w") as handle:
            handle.write(ptt_header())
            handle.writelines(ptt_step(step, pad=900) for step in range(1, 1001))  # about 1 MB each
    relay = Relay(sshd.port)
    sshd.add_host("via-relay", relay.port)
    monitor = Monitor([sshd.url(root, "via-relay")], remote=RemoteSettings(sshd.options(), POLL))
    cuts = 0
    try:
        monitor.scan()
        deadline = time.monotonic() + 40
        while not all(len(steps_of(monitor, n)) == 1000 for n in names):
            assert time.monotonic() < deadline, ("never read everything", monitor.root_status(), [len(steps_of(monitor, n)) for n in names], cuts, relay.received)
            monitor.poll([])
            if cuts < 4 and relay.received > (cuts + 1) * 700_000:
                cuts += relay.drop()
            time.sleep(0.01)
        assert cuts >= 4
        for name in names:
            assert steps_of(monitor, name) == list(range(1, 1001))
            assert records_fed(monitor, name) == 1000
        status = monitor.root_status()[0]
        assert status.state == "connected"
        assert status.bytes < 4 * 1_000_000 * 1.3, "whole files fetched again after the cuts"
    finally:
        monitor.close()
        relay.close()


@pytest.mark.parametrize(
    "alias, expected_state, words",
    [
        ("wrong-key", "auth failed", "refused our keys"),
        ("unknown-host-key", "auth failed", "not in known_hosts"),
    ],
    ids=["refused-key", "unknown-host-key"],
)
def test_a_refused_ssh_login_is_one_line_naming_the_cause_and_the_fix(sshd, tmp_path, alias, expected_state, words):
    monitor = Monitor([sshd.url(tmp_path, alias)], remote=RemoteSettings(sshd.options(), POLL))
    try:
        wait(lambda: monitor.root_status()[0].message is not None, what="the login being refused")
        status = monitor.root_status()[0]
        assert status.state == expected_state
        assert words in status.message and "\n" not in status.message
        assert status.message in monitor.notes
    finally:
        monitor.close()


def test_a_missing_ssh_path_is_named_and_followed_once_it_appears(sshd, tmp_path):
    root = tmp_path / "not-yet"
    monitor = Monitor([sshd.url(root)], remote=RemoteSettings(sshd.options(), POLL))
    try:
        wait(lambda: monitor.root_status()[0].message is not None, what="the missing path")
        assert "no such directory" in monitor.root_status()[0].message
        local_runs(root, ["late"])
        append_local(root)("late", ptt_step(1))
        wait(lambda: steps_of(monitor, "late") == [1], monitor, what="the run once its directory exists")
        assert state(monitor) == "connected" and monitor.notes == []
    finally:
        monitor.close()


def test_a_stopped_sshd_is_a_refused_connection_and_the_root_comes_back_when_it_starts(sshd, tmp_path):
    local_runs(tmp_path / "runs", ["a"])
    sshd.stop()
    monitor = Monitor([sshd.url(tmp_path / "runs")], remote=RemoteSettings(sshd.options(), POLL))
    try:
        monitor.scan()
        monitor.catch_up()  # fails once, and returns
        status = monitor.root_status()[0]
        assert status.state == "retrying" and "connection refused" in status.message
        sshd.start()
        wait(lambda: [r.name for r in monitor.visible_runs()] == ["a"], monitor, what="the run after the restart")
    finally:
        monitor.close()


def test_a_directory_the_remote_user_may_not_list_is_permission_denied(tmp_path):
    needs.module("sshfs", "pip install -e '.[ssh]'")
    if sshd_path() is None or (os.geteuid() == 0 and not os.path.isdir("/run/sshd")):
        needs.command("sshd", "apt-get install openssh-server; mkdir -p /run/sshd")
    server = Sshd(tmp_path / "sshd", sftp="internal-sftp -P opendir,readdir")  # the server refuses listings
    server.start()
    monitor = Monitor([server.url(tmp_path)], remote=RemoteSettings(server.options(), POLL))
    try:
        wait(lambda: monitor.notes, monitor, what="the refusal")
        assert any("permission denied" in note.lower() for note in monitor.notes), monitor.notes
    finally:
        monitor.close()
        server.stop()


def test_a_host_that_never_answers_holds_up_neither_the_other_roots_nor_the_monitor(sshd, tmp_path):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel, and nothing ever answers
    sshd.add_host("silent", silent.getsockname()[1])
    root = tmp_path / "runs"
    local_runs(root, ["a"])
    append_local(root)("a", "".join(ptt_step(s) for s in range(1, 51)))
    monitor = Monitor(
        [sshd.url(tmp_path, "silent"), sshd.url(root)], remote=RemoteSettings(sshd.options(), POLL)
    )
    try:
        monitor.scan()
        slowest = 0.0
        deadline = time.monotonic() + 30
        while steps_of(monitor, f"{ALIAS}:runs/a") != list(range(1, 51)):
            assert time.monotonic() < deadline
            started = time.monotonic()
            monitor.poll([])
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        assert state(monitor, 0) == "connecting"  # still waiting for the silent host's greeting
        assert slowest < 2.0
    finally:
        silent.close()
        monitor.close()


# --- s3 ---------------------------------------------------------------------------------------


def test_an_s3_root_is_followed_live_every_record_once_and_in_order_across_a_server_restart(s3):
    bucket = bucket_name()
    client = s3.client()
    client.mkdir(bucket)
    names = [f"grpo-{i}" for i in range(3)]
    content = {name: ptt_header() for name in names}
    lock = threading.Lock()

    def append(name: str, text: str) -> None:  # S3 objects are replaced whole, as `aws s3 sync` does
        with lock:
            content[name] += text
            for attempt in range(100):
                try:
                    client.pipe_file(f"{bucket}/runs/{name}/metrics.jsonl", content[name].encode())
                    return
                except OSError:
                    time.sleep(0.1)  # the server is down: the writer keeps its records and tries again
            raise RuntimeError("the S3 server never came back")

    for name in names:
        append(name, "")
    monitor = Monitor([f"s3://{bucket}/runs"], remote=RemoteSettings(s3.options(), POLL))
    try:
        monitor.scan()
        monitor.catch_up()
        assert sorted(run.name for run in monitor.visible_runs()) == names
        writer = Writer(append, names, steps=200, every=0.02)
        writer.start()
        wait(lambda: steps_of(monitor, names[0]), monitor, what="records read over S3")
        s3.stop()
        wait(lambda: state(monitor) == "retrying", monitor, what="the root noticing the server is gone")
        assert "cannot reach the storage endpoint" in monitor.root_status()[0].message
        s3.start()
        writer.join()
        assert writer.failed is None
        wait(lambda: all(steps_of(monitor, n) == list(range(1, 201)) for n in names), monitor, what="every record")
        for name in names:
            assert records_fed(monitor, name) == 200
    finally:
        monitor.close()


def test_runs_already_on_a_remote_root_are_taken_as_they_are_and_what_happens_next_is_news(s3, tmp_path):
    """The first look waits for the remote root, so its old crash and finish are not announced."""
    bucket = bucket_name()
    client = s3.client()
    client.mkdir(bucket)
    local = tmp_path / "runs"
    t0 = time.time() - 60
    write_run(local / "crashed", learning(20), t0)
    crash(local / "crashed", 20, "gpu-1", "RuntimeError: long ago")
    write_run(local / "finished", learning(20), t0, footer=True)
    write_run(local / "live", learning(20), t0)

    def upload(path: Path) -> None:
        client.pipe_file(f"{bucket}/runs/{path.relative_to(local).as_posix()}", path.read_bytes())

    for path in sorted(local.rglob("*.json*")):
        upload(path)
    passes: list[follow.Pass] = []
    settings = follow.LoopSettings(roots=[f"s3://{bucket}/runs"], poll_seconds=POLL, storage_options=s3.options())
    follower = follow.Follower(settings, passes.append, EventTracker())
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    try:
        wait(lambda: any(done.loaded for done in passes), what="the first look")
        assert [event.name for done in passes for event in done.events] == []
        assert sorted(run.name for run in follower.session.runs()) == ["crashed", "finished", "live"]
        nan = {"dpo_loss": float("nan"), "win_rate": 0.6, "reward_margin": 0.3}
        write_run(local / "live", [nan, nan], t0 + 20, first=21, header=False)
        upload(local / "live" / "metrics.jsonl")
        wait(lambda: any(done.events for done in passes), what="the loss turning NaN")
        assert [(event.kind, event.name) for done in passes for event in done.events] == [("diverged", "live")]
    finally:
        follower.stop()
        thread.join(10)


def test_s3_credentials_refused_missing_or_absent_are_each_named(s3):
    bucket = bucket_name()
    cases = {
        "bad key": (f"s3://{bucket}/runs", s3.options(key="AKIAWRONGWRONGWRONG", secret="nope"), "access denied"),
        "missing bucket": (f"s3://{bucket}/runs", s3.options(), f"no bucket named '{bucket}'"),
        "no credentials": (f"s3://{bucket}/runs", {"endpoint_url": s3.endpoint}, "no credentials found"),
    }
    monitors = {case: Monitor([url], remote=RemoteSettings(options, POLL)) for case, (url, options, _) in cases.items()}
    try:
        for case, monitor in monitors.items():
            wait(lambda: monitor.root_status()[0].message is not None, what=case)
            message = monitor.root_status()[0].message
            assert cases[case][2] in message and "\n" not in message, (case, message)
        assert state(monitors["bad key"]) == "auth failed" and state(monitors["no credentials"]) == "auth failed"
        client = s3.client()
        client.mkdir(bucket)
        client.pipe_file(f"{bucket}/runs/late/metrics.jsonl", (ptt_header() + ptt_step(1)).encode())
        late = monitors["missing bucket"]
        wait(lambda: steps_of(late, "late") == [1], late, what="the run once the bucket exists")
        assert state(late) == "connected"
    finally:
        for monitor in monitors.values():
            monitor.close()


# --- cost -------------------------------------------------------------------------------------


def quiet_pass_cost(monitor: Monitor, passes: int = 5) -> tuple[float, int]:
    """Requests per pass and bytes read while nothing changes, after catching up."""
    monitor.scan()
    monitor.catch_up()
    remote = next(iter(monitor.remotes.values()))
    start = remote.fs.requests, remote.fs.bytes, remote.passes
    wait(lambda: remote.passes >= start[2] + passes, monitor, what="quiet passes")
    done = remote.fs.requests, remote.fs.bytes, remote.passes
    return (done[0] - start[0]) / (done[2] - start[2]), done[1] - start[1]


def test_a_quiet_run_costs_one_listing_per_poll_and_no_read(sshd, s3, tmp_path):
    root = tmp_path / "runs"
    names = [f"quiet-{i}" for i in range(5)]
    local_runs(root, names)
    for name in names:
        append_local(root)(name, "".join(ptt_step(s) for s in range(1, 21)))
    bucket = bucket_name()
    client = s3.client()
    client.mkdir(bucket)
    for name in names:
        client.pipe_file(f"{bucket}/runs/{name}/metrics.jsonl", (root / name / "metrics.jsonl").read_bytes())
    for url, options, per_pass in [
        (sshd.url(root), sshd.options(), len(names)),  # a listing of each run's directory
        (f"s3://{bucket}/runs", s3.options(), 1),  # one listing of the whole root
    ]:
        monitor = Monitor([url], remote=RemoteSettings(options, 0.05))
        try:
            requests, read = quiet_pass_cost(monitor)
            assert len(monitor.visible_runs()) == len(names)
            assert requests <= per_pass, url
            assert read == 0, url
        finally:
            monitor.close()


# --- the command line and the screen ------------------------------------------------------------


def test_once_and_json_read_an_ssh_root_through_the_users_ssh_config_and_name_an_unreachable_one(sshd, tmp_path):
    root = tmp_path / "runs"
    local_runs(root, ["a"])
    append_local(root)("a", "".join(ptt_step(s) for s in range(1, 31)))
    command = [sys.executable, "-m", "rlhf_tui"]
    env = sshd.client_env()  # HOME holds .ssh/config and known_hosts: no option needed
    once = subprocess.run([*command, "--once", sshd.url(root)], capture_output=True, text=True, env=env, timeout=120)
    assert once.returncode == 0, once.stdout + once.stderr
    assert "a" in once.stdout and "30" in once.stdout
    assert f"root {sshd.url(root)}: connected" in once.stdout
    both = subprocess.run(
        [*command, "--json", sshd.url(root), sshd.url(root, "wrong-key")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert both.returncode == 1, both.stderr
    document = json.loads(both.stdout)
    states = {c["root"]: (c["state"], c["message"]) for c in document["connections"]}
    assert states[sshd.url(root)] == ("connected", None)
    assert states[sshd.url(root, "wrong-key")][0] == "auth failed"
    assert [run["name"] for run in document["runs"]] == [f"{ALIAS}:runs/a"]
    assert any("refused our keys" in note for note in document["notes"])


def test_a_root_whose_package_is_missing_is_a_usage_error_naming_the_extra(monkeypatch, capsys):
    from rlhf_tui import cli

    monkeypatch.setitem(sys.modules, "gcsfs", None)  # import gcsfs fails, as when it is not installed
    assert cli.main(["--once", "gs://bucket/runs"]) == cli.EXIT_USAGE
    assert "pip install 'rlhf-top[gcs]'" in capsys.readouterr().err


def test_storage_options_are_json_when_they_can_be_and_text_otherwise():
    from rlhf_tui.cli import storage_options

    assert storage_options(["endpoint_url=http://127.0.0.1:9000", "anon=true", "config_kwargs={\"a\": 1}"]) == {
        "endpoint_url": "http://127.0.0.1:9000", "anon": True, "config_kwargs": {"a": 1},
    }
    assert storage_options(["ssh.password=12345", "secret=007"]) == {"ssh.password": "12345", "secret": "007"}
    with pytest.raises(ValueError):
        storage_options(["no-equals-sign"])


def test_an_unknown_host_and_a_silent_one_are_explained_without_a_network():
    fs = RemoteFS("ssh://gpu-z/runs")
    message, auth = explain(socket.gaierror(-2, "Name or service not known"), fs)
    assert "unknown host 'gpu-z'" in message and "~/.ssh/config" in message and not auth
    message, _ = explain(TimeoutError(), fs)
    assert "no answer from gpu-z" in message


async def test_the_header_shows_each_remote_roots_state(sshd, tmp_path):
    from tui import wait_for

    from rlhf_tui.ui.app import RlhfTop
    from rlhf_tui.ui.live import LoopSettings

    root = tmp_path / "runs"
    local_runs(root, ["a"])
    append_local(root)("a", ptt_step(1))
    settings = LoopSettings(
        roots=[sshd.url(root), sshd.url(root, "wrong-key")], poll_seconds=POLL, storage_options=sshd.options()
    )
    app = RlhfTop(settings)
    async with app.run_test(size=(160, 40)) as pilot:
        summary = app.home.query_one("#summary")
        await wait_for(pilot, lambda: f"{ALIAS} ✓" in str(summary.render()) and "wrong-key: auth failed" in str(summary.render()))
        await wait_for(pilot, lambda: len(app.home.table.order) == 1)
        await pilot.press("q")


def test_a_remote_run_is_never_probed_as_a_process_of_this_machine(s3, tmp_path):
    """A process id from another machine means nothing here, even when that host has this one's name."""
    bucket = bucket_name()
    client = s3.client()
    client.mkdir(bucket)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    metadata = {"trainer_type": "dpo", "hostname": socket.gethostname(), "pid": int(gone.stdout)}
    client.pipe_file(f"{bucket}/runs/a/{runlog.METADATA_FILE}", json.dumps(metadata).encode())
    client.pipe_file(f"{bucket}/runs/a/{runlog.METRICS_FILE}", (ptt_header() + ptt_step(1)).encode())
    monitor = Monitor([f"s3://{bucket}/runs"], remote=RemoteSettings(s3.options(), POLL))
    try:
        monitor.scan()
        monitor.catch_up()
        (run,) = monitor.visible_runs()
        assert run.facts["pid"] == int(gone.stdout)
        monitor.check_processes()
        assert run.process_alive is None and run.lifecycle(time.time()) != "killed"
    finally:
        monitor.close()
