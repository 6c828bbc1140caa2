"""Every benchmark in one command: each bench/bench_*.py runs in its own process, then one table.

    python bench/run_all.py                 # quick sizes, a few minutes
    python bench/run_all.py --full          # the full sizes (1M lines, 1,000 runs x 10k steps, ...)
    python bench/run_all.py --only ingest rules -v

Each benchmark prints its own detailed table (shown with -v). This script picks the headline
figures out of that output and sets each beside its budget, with a verdict: ok, MISS, or blank
where there is no budget and the figure is there for comparison. The command behind every figure is listed under the table.
A benchmark whose script is missing, fails or prints nothing recognisable gets a FAILED row.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent


class Figure(NamedTuple):
    what: str
    value: str
    budget: str = ""
    ok: bool | None = None  # None: no budget


def number(text: str) -> float:
    return float(text.replace(",", ""))


def ingest(out: str) -> list[Figure]:
    rows: dict[tuple[str, int], dict[str, tuple[float, float, float]]] = {}
    for fmt, lines, method, seconds, rate, ratio in re.findall(
        r"^(PTT|lean)\s+(\d+)\s+(.+?)\s{2,}([\d.]+)\s+([\d,]+)\s+([\d.]+)\s*$", out, re.M
    ):
        rows.setdefault((fmt, int(lines)), {})[method] = (number(seconds), number(rate), number(ratio))
    figures = []
    for (fmt, lines), methods in rows.items():
        ours = methods.get("rlhf-top end to end")
        baseline = methods.get("json.loads loop")
        if ours is None or baseline is None:
            continue
        seconds, rate, ratio = ours
        value = f"{rate:,.0f} lines/s, {ratio:.1f}x read+split, {baseline[0] / seconds:.1f}x json.loads speed"
        figures.append(Figure(f"JSONL ingest, {fmt}, {lines:,} lines", value, ">= 400k lines/s, <= 5x", rate >= 400_000 and ratio <= 5))
    return figures


def tensorboard(out: str) -> list[Figure]:
    rows = {name.strip(): (number(s), number(p)) for name, s, p in re.findall(r"^(.+?)\s{2,}([\d.]+)\s+([\d,]+)\s+[\d.]+x\s*$", out, re.M)}
    split = rows.get("split only (no crc, no decoding)")
    ours = rows.get("TensorBoardReader, google-crc32c") or rows.get("TensorBoardReader, pure-Python crc32c")
    theirs = rows.get("tensorboard EventAccumulator")
    if not (split and ours and theirs):
        return []
    steps = re.search(r"wrote (\d+) steps x (\d+) tags", out)
    size = f", {int(steps.group(1)) * int(steps.group(2)):,} points" if steps else ""
    ratio = ours[0] / split[0]
    value = f"{ours[1]:,.0f} points/s, {ratio:.1f}x split-only, {theirs[0] / ours[0]:.1f}x EventAccumulator speed"
    return [Figure(f"TensorBoard events{size}", value, "<= 5x reading the records", ratio <= 5)]


def wandb(out: str) -> list[Figure]:
    rows = {name.strip(): (number(s), number(p)) for name, s, p in re.findall(r"^(.+?)\s{2,}([\d.]+)\s+([\d,]+)\s+[\d.]+x\s*$", out, re.M)}
    split = rows.get("split only (framing, no crc, no decoding)")
    ours = rows.get("WandbReader")
    theirs = rows.get("wandb_internal_pb2 + json.loads")
    if not (split and ours and theirs):
        return []
    size = re.search(r"wandb wrote (\d+) rows x (\d+) keys", out)
    points = f", {int(size.group(1)) * int(size.group(2)):,} points" if size else ""
    value = f"{ours[1]:,.0f} points/s, {theirs[0] / ours[0]:.1f}x wandb's protobuf classes"
    return [Figure(f"W&B .wandb{points}", value)]


def console_log(out: str) -> list[Figure]:
    reader = re.search(r"^ConsoleLogReader .*?cpu\s+[\d.]+ s\s+([\d,]+) lines/s", out, re.M)
    ratio = re.search(r"reader / split \(cpu\): ([\d.]+)x", out)
    size = re.search(r"^(\d+) log dicts", out, re.M)
    if not (reader and ratio):
        return []
    what = f"console log (transformers 5.x){f', {int(size.group(1)):,} dicts' if size else ''}"
    value = f"{number(reader.group(1)):,.0f} lines/s, {number(ratio.group(1)):.1f}x split"
    return [Figure(what, value, "<= 5x splitting the bytes", number(ratio.group(1)) <= 5)]


def coldstart(out: str) -> list[Figure]:
    figures = []
    keys = re.search(r"^(\d+) metrics a line", out, re.M)
    shape = f", {keys.group(1)} keys" if keys else ""
    for runs, steps, points, once, once_peak, as_json, json_peak, per_point in re.findall(
        r"^\s*(\d+)\s+(\d+)\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", out, re.M
    ):
        runs, steps, once, as_json, json_peak = int(runs), int(steps), number(once), number(as_json), number(json_peak)
        size = f"{runs} runs x {steps:,} steps{shape}"
        figures.append(Figure(f"--once, {size}", f"{once:.2f} s, peak RSS {once_peak} MiB"))
        if runs == 200 and steps >= 10_000:
            budget, ok = "< 3 s", as_json < 3
        elif runs == 1000 and steps >= 10_000:
            budget, ok = "< 30 s, < 1,536 MiB", as_json < 30 and json_peak < 1536
        else:
            budget, ok = "", None
        figures.append(Figure(f"--json, {size}", f"{as_json:.2f} s, peak RSS {json_peak:.0f} MiB", budget, ok))
        figures.append(Figure(f"memory, {number(points):,.0f} points", f"{number(per_point):.1f} bytes/point", "< 40 bytes/point", number(per_point) < 40))
    return figures


def rules(out: str) -> list[Figure]:
    header = re.search(r"^trainer\s+((?:[\d,]+\s+)+)\(us per new step", out, re.M)
    if header is None:
        return []
    histories = [number(h) for h in header.group(1).split()]
    figures = []
    for trainer, costs, ratio in re.findall(r"^(\w+)\s+((?:\d+\s+)+)ratio last/first ([\d.]+)", out, re.M):
        costs = costs.split()
        value = " / ".join(f"{c} us" for c in costs) + f" at {' / '.join(f'{h:,.0f}' for h in histories)} steps"
        figures.append(Figure(f"rule cost per new step, {trainer}", value, "flat: last/first <= 2", number(ratio) <= 2))
    for trainer, ms, rate, _roles, total in re.findall(r"^(\w+)\s+([\d.]+) ms\s+([\d,]+)\s+(\d+)\s+([\d.]+) s\s*$", out, re.M):
        figures.append(Figure(f"rules on a 10k-step backlog, {trainer}", f"{ms} ms ({number(rate):,.0f} points/s), x200 runs {total} s", "", None))
    return figures


def latency(out: str) -> list[Figure]:
    found = re.search(r"median ([\d.]+) ms\s+p95 ([\d.]+) ms\s+max ([\d.]+) ms", out)
    title = re.search(r"^append -> model updated \((.*)\)", out, re.M)
    if found is None:
        return []
    median, p95, worst = (number(v) for v in found.groups())
    what = f"append -> model updated{f' ({title.group(1)})' if title else ''}"
    return [Figure(what, f"median {median:.0f} ms, p95 {p95:.0f} ms, max {worst:.0f} ms", "< 300 ms (p95)", p95 < 300)]


def remote(out: str) -> list[Figure]:
    poll = re.search(r"poll every ([\d.]+) s", out)
    runs = re.search(r"^(\d+) remote runs", out, re.M)
    figures = []
    for server, cold, quiet_req, quiet_kib, active_req, active_kib, p50, p95 in re.findall(
        r"^(ssh|s3) \(.*?\)\s+([\d.]+)s\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)\s+(\d+)ms\s+(\d+)ms", out, re.M
    ):
        count = runs.group(1) if runs else "?"
        budget = float(poll.group(1)) + 1 if poll else 3.0
        figures.append(Figure(f"{server}: append -> model, {count} runs", f"median {p50} ms, p95 {p95} ms",
                              f"< poll + 1 s ({budget:g} s, p95)", number(p95) < budget * 1000))
        figures.append(Figure(f"{server}: {count} quiet runs", f"{quiet_req} requests/min, {quiet_kib} KiB/min"))
        figures.append(Figure(f"{server}: {count} runs, some appending", f"{active_req} requests/min, {active_kib} KiB/min"))
    return figures


def report(out: str) -> list[Figure]:
    figures = []
    for kind, best, median in re.findall(r"^rlhf-top report, ([^:]+): best ([\d.]+) s, median ([\d.]+) s", out, re.M):
        figures.append(Figure(f"report on a 10k-step run, {kind}", f"median {median} s (best {best} s)", "< 0.5 s", number(median) < 0.5))
    return figures


def callback(out: str) -> list[Figure]:
    figures = []
    for label, micros in re.findall(r"^(.+?)\s{2,}RunLogger\.on_log\s+([\d.]+)\s+[\d,]+\s*$", out, re.M):
        figures.append(Figure(f"RunLogger.on_log, {label.strip()}", f"{micros} us/call", "< 1 ms", number(micros) < 1000))
    return figures


def tui(out: str) -> list[Figure]:
    figures = []
    setup = re.search(r"^(\d+) runs x (\d+) steps; (\d+) append", out, re.M)
    size = f", {setup.group(1)} runs x {int(setup.group(2)):,} steps" if setup else ""
    runs, steps = (int(setup.group(1)), int(setup.group(2))) if setup else (0, 0)
    table = re.search(r"^table on screen\s+([\d.]+) s", out, re.M)
    cold = re.search(r"^cold start \(all listed\)\s+([\d.]+) s", out, re.M)
    budgets = {(200, 10_000): (1, 3), (1000, 10_000): (2, 30)}.get((runs, steps))
    if table:
        budget, ok = (f"< {budgets[0]} s", number(table.group(1)) < budgets[0]) if budgets else ("", None)
        figures.append(Figure(f"TUI table on screen{size}", f"{table.group(1)} s", budget, ok))
    if cold:
        budget, ok = (f"< {budgets[1]} s", number(cold.group(1)) < budgets[1]) if budgets else ("", None)
        figures.append(Figure(f"TUI all loaded and diagnosed{size}", f"{cold.group(1)} s", budget, ok))
    for name, median, p95 in re.findall(r"^((?:keypress|append)[^\n]*?)\s+median\s+([\d.]+) ms\s+p95\s+([\d.]+) ms", out, re.M):
        limit = 300 if name.startswith("append") else 100
        budget = f"< {limit} ms (p95)"
        figures.append(Figure(f"TUI {name.strip()}", f"median {median} ms, p95 {p95} ms", budget, number(p95) < limit))
    for name, percent in re.findall(r"^(CPU [^\n]*?)\s+([\d.]+) % of one core", out, re.M):
        quiet = "quiet" in name
        live = f", {setup.group(3)} appending" if setup and not quiet else ""
        runs = f", {setup.group(1)} runs" if setup else ""
        limit = 2 if quiet else 25
        budget = f"< {limit}% of a core"
        figures.append(Figure(f"TUI {name}{runs}{live}", f"{percent}% of one core", budget, number(percent) < limit))
    return figures


def watch(out: str) -> list[Figure]:
    figures = []
    setup = re.search(r"^(\d+) quiet runs x (\d+) steps", out, re.M)
    runs = f", {setup.group(1)} quiet runs" if setup else ""
    quiet = re.search(r"^CPU when all quiet\s+([\d.]+) % of one core", out, re.M)
    if quiet:
        budget, ok = ("< 1% of a core (issue 15)", number(quiet.group(1)) < 1) if setup and setup.group(1) == "200" else ("", None)
        figures.append(Figure(f"watch CPU{runs}", f"{quiet.group(1)}% of one core", budget, ok))
    latency = re.search(r"^event -> notification\s+median ([\d.]+) s\s+p95 ([\d.]+) s.*?([\d.]+) s of it the collection window", out, re.M)
    if latency:
        value = f"median {latency.group(1)} s, p95 {latency.group(2)} s ({latency.group(3)} s collection window)"
        figures.append(Figure("watch event -> webhook", value))
    return figures


def calibration(out: str) -> list[Figure]:
    figures = []
    healthy = re.search(r"^healthy runs without a medium-or-worse finding: (\d+)/(\d+)", out, re.M)
    caught = re.search(r"^expected problems caught: (\d+)/(\d+)", out, re.M)
    delay = re.search(r"^delay from knowable step to first flag: median ([\d.]+), max (-?\d+)", out, re.M)
    if healthy:
        ok, total = int(healthy.group(1)), int(healthy.group(2))
        figures.append(Figure("corpus: healthy runs with no medium+ finding", f"{ok}/{total}", "all", ok == total))
    if caught:
        ok, total = int(caught.group(1)), int(caught.group(2))
        figures.append(Figure("corpus: expected problems caught", f"{ok}/{total}", "all", ok == total))
    if delay:
        figures.append(Figure("corpus: steps from knowable to flagged", f"median {delay.group(1)}, max {delay.group(2)}"))
    return figures


@dataclass
class Bench:
    name: str
    quick: list[str]
    full: list[str]
    figures: Callable[[str], list[Figure]]

    @property
    def script(self) -> Path:
        return BENCH / f"bench_{self.name}.py"


BENCHES = [
    Bench("ingest", ["--lines", "10000", "100000", "--repeats", "1"], ["--lines", "10000", "100000", "1000000", "--repeats", "3"], ingest),
    Bench("tensorboard", ["--steps", "20000"], ["--steps", "100000"], tensorboard),
    Bench("wandb", ["--rows", "10000"], ["--rows", "100000"], wandb),
    Bench("console_log", ["20000"], ["100000"], console_log),
    Bench("coldstart", ["--runs", "10", "200", "--steps", "1000"], ["--runs", "200", "1000", "--steps", "10000"], coldstart),
    Bench("rules", ["--quick"], [], rules),
    Bench("latency", ["--appends", "30"], ["--appends", "100"], latency),
    Bench("report", ["--repeat", "3"], ["--repeat", "7"], report),
    Bench("callback", ["--calls", "5000"], ["--calls", "20000"], callback),
    Bench("tui", ["--runs", "50", "--live", "5", "--seconds", "5"], ["--runs", "200", "--steps", "10000", "--keys", "15"], tui),
    Bench("watch", ["--settle", "10", "--seconds", "20", "--events", "3"], [], watch),
    Bench("calibration", [], [], calibration),
    Bench("remote", ["--runs", "50", "--live", "5", "--seconds", "10"], ["--runs", "50", "--live", "5", "--seconds", "60"], remote),
]


def run(bench: Bench, full: bool, timeout: float) -> tuple[list[str], str, list[Figure]]:
    """Run one benchmark from the repository root; returns its command line, output and figures."""
    command = ["python", f"bench/{bench.script.name}", *(bench.full if full else bench.quick)]
    if not bench.script.exists():
        return command, "", [Figure("(not run)", f"{bench.script.name} does not exist", ok=False)]
    try:
        result = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=timeout, cwd=BENCH.parent)
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else expired.stdout or ""
        return command, output, [Figure("(FAILED)", f"timed out after {timeout:.0f} s", ok=False)]
    output = result.stdout + result.stderr
    figures = bench.figures(result.stdout) if result.returncode == 0 else []
    if not figures:
        last = (output.strip().splitlines() or ["no output"])[-1][:100]
        figures = [Figure("(FAILED)", f"exit {result.returncode}: {last}", ok=False)]
    return command, output, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full sizes (takes much longer)")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run only these benchmarks")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per benchmark")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print each benchmark's own output")
    args = parser.parse_args()
    rows: list[tuple[str, Figure]] = []
    commands: list[tuple[str, str]] = []
    for bench in BENCHES:
        if args.only and bench.name not in args.only:
            continue
        print(f"running {bench.name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        command, output, figures = run(bench, args.full, args.timeout)
        print(f"  {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        if args.verbose:
            print(f"\n$ {' '.join(command)}\n{output.rstrip()}\n")
        commands.append((bench.name, " ".join(command)))
        rows += [(bench.name, figure) for figure in figures]
    verdicts = {True: "ok", False: "MISS", None: ""}
    header = ("bench", "figure", "value", "budget", "")
    table = [header] + [(name, f.what, f.value, f.budget, verdicts[f.ok]) for name, f in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print()
    for name, command in commands:
        print(f"{name}: {command}")
    missed = sum(f.ok is False for _, f in rows)
    print(f"\n{len(rows)} figures, {missed} missing their budget" + (" (quick sizes; --full for the full ones)" if not args.full else ""))


if __name__ == "__main__":
    main()
