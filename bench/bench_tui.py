"""The TUI under load, end to end: `rlhf-top` in a pseudo-terminal, watched like a person would.

    python bench/bench_tui.py [--runs 200] [--live 20] [--steps 1000] [--keys 4] [--period 0.1] [--seconds 20] [--settle 60]

Makes RUNS run directories (PTT metrics.jsonl, STEPS steps each), starts `rlhf-top` on them in a
pty of 200x60, reads everything it draws, and measures:

- table on screen: until the screen says "<RUNS> runs" (every run has its row, big logs their tail);
- cold start: until it no longer says "loading" (every history read and diagnosed);
- keypress -> redraw: `s` (re-sorts all rows) until the new "sort: <key>" is drawn; quiet and busy;
- append -> screen: LIVE runs each append a step every PERIOD seconds; a step number is unique to
  its run, and the time from the write to that number being drawn is the latency;
- CPU of the rlhf-top process (all threads, and the UI thread alone, from /proc): while LIVE runs
  append, and once all have been quiet for SETTLE seconds.

Budgets: keypress under 100 ms, append under 300 ms, busy under 25% of one core, quiet
under 2%.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from collections import deque
from datetime import datetime, timezone

import sweep
from rlhf_tui.core import runlog

COLUMNS, ROWS = 200, 60
SORT_LABELS = ["name", "step", "age", "loss", "reward", "win rate", "KL", "status"]
STEP_BASE = 100_000  # live run k logs steps k * STEP_BASE + n: every drawn step number names its run
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")
DRAWN_STEP = re.compile(r"▶ (\d{6,})")
OVERLAP = 64


KEYS = 4  # metrics a line: 4, or 15 as PTT writes them for DPO (bench/sweep.py)


def line(step: int, when: float, loss: float) -> str:
    stamp = datetime.fromtimestamp(when, tz=timezone.utc).isoformat(timespec="microseconds")
    metrics = {"dpo_loss": loss, "win_rate": 0.6, "reward_margin": 0.2, "rewards_chosen": 0.1}
    if KEYS > 4:
        metrics.update({key: 0.5 for key in sweep.KEYS if key not in metrics})
    return runlog.line(runlog.step(step, stamp, metrics))


def make_runs(root: str, runs: int, live: int, steps: int, period: float = 0.1) -> list[str]:
    """Live runs are named aa-live-* so the default sort (status, then name) shows them on top;
    their history ends now. Quiet runs logged a step every 10 s and finished an hour ago."""
    now = time.time()
    live_paths = []
    for index in range(runs):
        is_live = index < live
        name = f"aa-live-{index:02d}" if is_live else f"zz-quiet-{index:03d}"
        directory = os.path.join(root, name)
        os.makedirs(directory)
        first = (index + 1) * STEP_BASE if is_live else 1
        interval = period if is_live else 10.0
        start = now - steps * interval - (0 if is_live else 3600)
        with open(os.path.join(directory, "metrics.jsonl"), "w") as file:
            file.write(runlog.line(runlog.header("dpo", name, datetime.fromtimestamp(start, tz=timezone.utc).isoformat())))
            file.writelines(line(first + n, start + n * interval, 0.6 - 0.0001 * n) for n in range(steps))
            if not is_live:
                file.write(runlog.line(runlog.footer(name, steps, datetime.fromtimestamp(now, tz=timezone.utc).isoformat())))
        if is_live:
            live_paths.append(os.path.join(directory, "metrics.jsonl"))
    return live_paths


class Terminal:
    """rlhf-top in a pty; a thread reads what it draws (escape sequences removed) and notes when
    awaited strings appear, and when each live run's step numbers are drawn."""

    def __init__(self, root: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
            os.execvpe(sys.executable, [sys.executable, "-m", "rlhf_tui", root], env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.lock = threading.Lock()
        self.tail = ""
        self.waiting: dict[str | re.Pattern, float] = {}  # text or pattern -> when it started to be awaited
        self.seen: dict[str | re.Pattern, float] = {}  # text or pattern -> seconds from awaited to drawn
        self.pending_steps: dict[int, deque[tuple[int, float]]] = {}  # live run -> (step, written at)
        self.step_latencies: list[float] = []
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while self.running:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 1 << 16).decode("utf-8", "replace")
            except OSError:
                return
            now = time.perf_counter()
            with self.lock:
                text = self.tail[-OVERLAP:] + ESCAPES.sub("", chunk)
                for wanted in [w for w in self.waiting if (w.search(text) if isinstance(w, re.Pattern) else w in text)]:
                    self.seen[wanted] = now - self.waiting.pop(wanted)
                for match in DRAWN_STEP.finditer(text):
                    step = int(match.group(1))
                    queue = self.pending_steps.get(step // STEP_BASE)
                    while queue and queue[0][0] <= step:
                        self.step_latencies.append(now - queue.popleft()[1])
                self.tail = text[-4096:]

    def expect(self, text: str | re.Pattern) -> None:
        with self.lock:
            self.waiting[text] = time.perf_counter()

    def wrote_step(self, step: int) -> None:
        with self.lock:
            self.pending_steps.setdefault(step // STEP_BASE, deque()).append((step, time.perf_counter()))

    def wait(self, text: str | re.Pattern, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if text in self.seen:
                    return self.seen.pop(text)
            time.sleep(0.002)
        raise SystemExit(f"rlhf-top never drew {text!r}")

    def press(self, key: str) -> None:
        os.write(self.fd, key.encode())

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds of the whole process, and of its main (UI) thread alone."""
        return _cpu(f"/proc/{self.pid}/stat"), _cpu(f"/proc/{self.pid}/task/{self.pid}/stat")

    def stop(self) -> None:
        self.press("q")
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.running = False


def _cpu(stat_path: str) -> float:
    with open(stat_path) as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keypress_latencies(terminal: Terminal, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        for label in SORT_LABELS:
            terminal.expect(f"sort: {label} ")
            terminal.press("s")
            samples.append(terminal.wait(f"sort: {label} ") * 1000)
            time.sleep(0.15)
    return samples


def cpu_percent(terminal: Terminal, seconds: float) -> tuple[float, float]:
    """% of one core used by rlhf-top, in all and by its UI thread, over `seconds`."""
    (total, ui), start = terminal.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    (total_after, ui_after), elapsed = terminal.cpu_seconds(), time.monotonic() - start
    return 100 * (total_after - total) / elapsed, 100 * (ui_after - ui) / elapsed


def summary(name: str, samples: list[float], unit: str = "ms") -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return (
        f"{name:<28} median {statistics.median(ordered):7.1f} {unit}   p95 {p95:7.1f} {unit}"
        f"   max {ordered[-1]:7.1f} {unit}   (n={len(ordered)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--live", type=int, default=20, help="runs that keep appending")
    parser.add_argument("--steps", type=int, default=1000, help="steps already logged per run")
    parser.add_argument("--keys", type=int, choices=(4, 15), default=4, help="metrics a line")
    parser.add_argument("--period", type=float, default=0.1, help="seconds between steps of a live run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the busy and quiet phases")
    parser.add_argument("--settle", type=float, default=60.0, help="quiet seconds before the quiet phase")
    args = parser.parse_args()
    global KEYS
    KEYS = args.keys
    root = tempfile.mkdtemp(prefix="rlhf-top-bench-")
    terminal = None
    try:
        live_paths = make_runs(root, args.runs, args.live, args.steps, args.period)
        started = time.perf_counter()
        terminal = Terminal(root)
        listed = f"{args.runs} runs"
        loaded = re.compile(rf"{args.runs} runs[^\n]*?sort: status ▼(?!  loading)")  # "loading…" has gone
        terminal.expect(listed)
        terminal.expect(loaded)
        terminal.wait(listed, timeout=300)
        table = time.perf_counter() - started
        terminal.wait(loaded, timeout=300)
        cold = time.perf_counter() - started
        time.sleep(2)
        quiet_keys = keypress_latencies(terminal, 2)

        stop = threading.Event()
        next_step = [(k + 1) * STEP_BASE + args.steps for k in range(args.live)]

        def append() -> None:
            tick = time.monotonic()
            while not stop.is_set():
                for k, path in enumerate(live_paths):
                    step = next_step[k]
                    terminal.wrote_step(step)
                    with open(path, "a") as file:
                        file.write(line(step, time.time(), 0.5))
                    next_step[k] += 1
                tick += args.period
                stop.wait(max(0.0, tick - time.monotonic()))

        writer = threading.Thread(target=append, daemon=True)
        writer.start()
        time.sleep(2)  # let the watcher and the frame cadence settle
        with terminal.lock:
            terminal.step_latencies.clear()
        busy_cpu = cpu_percent(terminal, args.seconds)
        busy_keys = keypress_latencies(terminal, 1)
        stop.set()
        writer.join()
        time.sleep(1)
        with terminal.lock:
            appended = [seconds * 1000 for seconds in terminal.step_latencies]
            missed = sum(len(queue) for queue in terminal.pending_steps.values())
        time.sleep(args.settle)  # all quiet long enough that ages tick by the minute, as in an idle night
        quiet_cpu = cpu_percent(terminal, args.seconds)

        print(f"{args.runs} runs x {args.steps} steps; {args.live} append a step every {args.period * 1000:.0f} ms; {args.keys} metrics a line")
        print(f"{'table on screen':<28} {table:7.2f} s")
        print(f"{'cold start (all listed)':<28} {cold:7.2f} s")
        print(summary("keypress -> redraw, quiet", quiet_keys))
        print(summary("keypress -> redraw, busy", busy_keys))
        print(summary("append -> on screen", appended))
        print(f"{'':<28} (a step counts as shown when it or a later step of its run is drawn; {missed} never were)")
        for label, (total, ui) in (("CPU while appending", busy_cpu), ("CPU when all quiet", quiet_cpu)):
            print(f"{label:<28} {total:7.1f} % of one core   (UI thread {ui:.1f} %, reader and watcher {total - ui:.1f} %)")
    finally:
        if terminal is not None:
            terminal.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
