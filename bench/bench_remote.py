"""Remote roots: append -> run model latency, and bytes and requests per minute, for RUNS runs on a
local sshd and a local S3 server (moto), through a relay that counts every byte on the wire.

    python bench/bench_remote.py [--runs 50] [--live 5] [--seconds 30] [--poll 2]

For each server: RUNS runs (PTT metrics.jsonl, 200 steps each) are followed by a monitor over the
`ssh://` or `s3://` root (poll interval POLL seconds). First all are quiet for SECONDS; then LIVE of
them append a step every second for SECONDS. Each appended step's latency is the time from its write
until the monitor's run model holds it (the screen follows within one frame, 250 ms). Requests are
the listings, stats and ranged reads rlhf-top made; bytes are those through the relay, both ways.
The servers, the relay and every file are on this machine, in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from remote_servers import Relay, S3Server, Sshd  # noqa: E402

from rlhf_tui.core import runlog  # noqa: E402
from rlhf_tui.core.monitor import Monitor  # noqa: E402
from rlhf_tui.core.remote import RemoteSettings  # noqa: E402

STEPS = 200


def line(step: int) -> str:
    metrics = {"dpo_loss": 0.7 - step * 1e-4, "win_rate": 0.6, "reward_margin": 0.2}
    return runlog.line(runlog.step(step, time.time(), metrics))


def history() -> str:
    header = runlog.line(runlog.header("dpo", "bench", "2026-11-26T01:00:00+00:00"))
    return header + "".join(line(s) for s in range(1, STEPS + 1))


class Target:
    """Where the runs live and how a step is appended there."""

    def __init__(self, name: str, url: str, options: dict, relay: Relay, append) -> None:
        self.name, self.url, self.options, self.relay, self.append = name, url, options, relay, append


def last_step(monitor: Monitor, name: str) -> int | None:
    for run in monitor.runs.values():
        if run.name == name:
            return run.last_step
    return None


def measure(target: Target, runs: int, live: int, seconds: float, poll: float) -> dict:
    monitor = Monitor([target.url], remote=RemoteSettings(target.options, poll))
    remote = next(iter(monitor.remotes.values()))
    try:
        started = time.perf_counter()
        monitor.scan()
        monitor.catch_up()
        cold = time.perf_counter() - started
        assert len(monitor.visible_runs()) == runs, (len(monitor.visible_runs()), monitor.notes)

        def phase(active: int) -> tuple[float, float, float, list[float]]:
            requests, wire = remote.fs.requests, target.relay.sent + target.relay.received
            latencies: list[float] = []
            written: dict[str, tuple[int, float]] = {}
            stop = threading.Event()

            def writer() -> None:
                step = STEPS
                while not stop.wait(1.0):
                    step += 1
                    for index in range(active):
                        name = f"run-{index:03d}"
                        target.append(name, line(step))
                        written[name] = (step, time.perf_counter())

            thread = threading.Thread(target=writer, daemon=True)
            phase_start = time.perf_counter()
            thread.start()
            seen: dict[str, int] = {}
            while time.perf_counter() - phase_start < seconds:
                monitor.poll([])
                now = time.perf_counter()
                for name, (step, when) in list(written.items()):
                    current = last_step(monitor, name)
                    if current is not None and current >= step and seen.get(name) != step:
                        seen[name] = step
                        latencies.append(now - when)
                time.sleep(0.005)
            stop.set()
            thread.join()
            minutes = (time.perf_counter() - phase_start) / 60
            return (remote.fs.requests - requests) / minutes, (
                target.relay.sent + target.relay.received - wire
            ) / minutes, minutes, latencies

        quiet_requests, quiet_bytes, _, _ = phase(0)
        active_requests, active_bytes, _, latencies = phase(live)
        return {
            "cold": cold,
            "quiet_requests": quiet_requests,
            "quiet_bytes": quiet_bytes,
            "active_requests": active_requests,
            "active_bytes": active_bytes,
            "latencies": latencies,
        }
    finally:
        monitor.close()


def ssh_target(directory: Path, runs: int) -> tuple[Target, Sshd]:
    server = Sshd(directory / "sshd")
    server.start()
    relay = Relay(server.port)
    server.add_host("bench", relay.port)
    root = directory / "runs"
    for index in range(runs):
        (root / f"run-{index:03d}").mkdir(parents=True)
        (root / f"run-{index:03d}" / "metrics.jsonl").write_text(history())

    def append(name: str, text: str) -> None:
        with open(root / name / "metrics.jsonl", "a") as handle:
            handle.write(text)

    return Target("ssh (OpenSSH sshd)", server.url(root, "bench"), server.options(), relay, append), server


def s3_target(runs: int) -> tuple[Target, S3Server]:
    os.environ.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull)
    server = S3Server()
    server.start()
    relay = Relay(server.port)
    client = server.client()
    client.mkdir("bench")
    contents = {}
    for index in range(runs):
        name = f"run-{index:03d}"
        contents[name] = history()
        client.pipe_file(f"bench/runs/{name}/metrics.jsonl", contents[name].encode())

    def append(name: str, text: str) -> None:  # an object is replaced whole, as a sync tool does
        contents[name] += text
        client.pipe_file(f"bench/runs/{name}/metrics.jsonl", contents[name].encode())

    options = server.options(endpoint_url=f"http://127.0.0.1:{relay.port}")
    return Target("s3 (moto server)", "s3://bench/runs", options, relay, append), server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--live", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.pop("SSH_AUTH_SOCK", None)
    print(f"{args.runs} remote runs ({STEPS} steps each), poll every {args.poll:g} s; quiet for {args.seconds:g} s, "
          f"then {args.live} runs append a step a second for {args.seconds:g} s")
    print(f"{'server':<22}{'cold start':>11}{'quiet req/min':>15}{'quiet KiB/min':>15}"
          f"{'active req/min':>16}{'active KiB/min':>16}{'latency p50':>13}{'p95':>8}")
    with tempfile.TemporaryDirectory(prefix="rlhf-top-bench-remote-") as tmp:
        servers = []
        try:
            ssh, server = ssh_target(Path(tmp), args.runs)
            servers.append(server)
            s3, server = s3_target(args.runs)
            servers.append(server)
            for target in (ssh, s3):
                result = measure(target, args.runs, args.live, args.seconds, args.poll)
                latencies = sorted(result["latencies"])
                p50 = statistics.median(latencies) if latencies else float("nan")
                p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
                print(f"{target.name:<22}{result['cold']:>10.2f}s{result['quiet_requests']:>15.0f}"
                      f"{result['quiet_bytes'] / 1024:>15.1f}{result['active_requests']:>16.0f}"
                      f"{result['active_bytes'] / 1024:>16.1f}{p50 * 1000:>11.0f}ms{p95 * 1000:>6.0f}ms")
                target.relay.close()
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
