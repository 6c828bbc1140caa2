"""Regenerate the corpus of real TRL runs in tests/fixtures/corpus/ (not part of CI).

    python bench/corpus/make_corpus.py                 # every run in runs.py, sequentially (~20 min)
    python bench/corpus/make_corpus.py --only dpo_lr0  # some runs again

Builds a tiny Llama and its word-level tokenizer offline (assets.py), pre-trains it for a few hundred
steps so it writes short sentences, then trains each run of runs.py with a real TRL trainer on CPU,
each in its own `nice`d subprocess whose merged stdout+stderr is the run's train.log (what
`python -u train.py 2>&1 | tee train.log` leaves). Faults that come from outside the process are
done here: SIGTERM or SIGKILL once metrics.jsonl reaches a step, and SIGKILL of a hung run once it
has been silent long enough. Weights, optimizer state, tokenizer files and training_args.bin (a
pickle) are deleted afterwards; what is kept is what rlhf-top reads. generation.json records, per
run, the exit status, the signal sent and when, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from runs import RUNS  # noqa: E402

KEEP_FILES = {"train.log", "metrics.jsonl", "run_metadata.json", "postmortem.json", "README.md", "trainer_state.json"}
POLL_SECONDS = 0.05


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def build_base(work: Path) -> Path:
    base = work / "base"
    if (base / "config.json").exists():
        return base
    code = "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, %r); import assets; " \
           "from pathlib import Path; assets.build_base(Path(%r))" % (str(HERE), str(base))
    subprocess.run(["nice", "-n", "10", sys.executable, "-c", code], check=True, env=offline_env())
    return base


def logged_step(metrics: Path) -> int:
    """The newest train step in a RunLogger metrics.jsonl (0 before the first)."""
    try:
        text = metrics.read_text()
    except FileNotFoundError:
        return 0
    step = 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record and record.get("phase") != "eval":
            step = max(step, int(record["step"]))
    return step


class Running:
    """One training subprocess and what the generator does to it."""

    def __init__(self, name: str, out: Path, base: Path) -> None:
        self.name = name
        self.spec = RUNS[name]
        self.out = out / name
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        self.log = open(self.out / "train.log", "wb")
        command = ["nice", "-n", "10", sys.executable, "-u", str(HERE / "train.py"), name,
                   "--output", str(self.out), "--base", str(base)]
        self.started = time.time()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=offline_env(), cwd=self.out)
        self.record = {"run": name, "trainer": self.spec["trainer"], "started": self.started}
        self.quiet_since: float | None = None
        self.last_seen = -1

    def fault(self) -> dict:
        return self.spec.get("fault", {})

    def poll(self) -> bool:
        """Do what the fault says; True once the process has ended."""
        if self.process.poll() is not None:
            return True
        fault = self.fault()
        kind = fault.get("kind")
        if kind in ("sigterm", "sigkill") and "signal" not in self.record:
            step = logged_step(self.out / "metrics.jsonl")
            if step >= fault["step"]:
                self.send(signal.SIGTERM if kind == "sigterm" else signal.SIGKILL, step)
        if kind == "hang" and "signal" not in self.record:
            step = logged_step(self.out / "metrics.jsonl")
            if step != self.last_seen:
                self.last_seen, self.quiet_since = step, time.time()
            elif step >= fault["step"] - 1 and time.time() - self.quiet_since >= fault["seconds"]:
                self.send(signal.SIGKILL, step)
        return False

    def hung(self) -> bool:
        """A hung run that has stopped logging at its step: the generator may start the next run."""
        fault = self.fault()
        return fault.get("kind") == "hang" and self.last_seen >= fault["step"] - 1 and self.quiet_since is not None \
            and time.time() - self.quiet_since > 5

    def send(self, signum: int, step: int) -> None:
        self.process.send_signal(signum)
        self.record.update(signal=signal.Signals(signum).name, signal_at_logged_step=step,
                           signal_time=time.time(), quiet_seconds=None if self.quiet_since is None else round(time.time() - self.quiet_since, 1))

    def finish(self) -> dict:
        self.process.wait()
        self.log.close()
        self.record.update(returncode=self.process.returncode, seconds=round(time.time() - self.started, 1),
                           last_logged_step=logged_step(self.out / "metrics.jsonl"))
        strip(self.out)
        return self.record


def strip(run_dir: Path) -> None:
    """Delete what rlhf-top does not read: weights, optimizer, tokenizer, configs, the args pickle."""
    for path in sorted(run_dir.rglob("*"), reverse=True):
        if path.is_file() and path.name not in KEEP_FILES and not path.name.startswith("events.out.tfevents."):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "corpus")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rlhf-top-corpus-work"))
    parser.add_argument("--only", nargs="*", help="run names (default: all)")
    options = parser.parse_args()
    names = options.only or list(RUNS)
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"unknown runs: {unknown}")
    options.out.mkdir(parents=True, exist_ok=True)
    options.work.mkdir(parents=True, exist_ok=True)
    began = time.time()
    base = build_base(options.work)
    manifest_path = options.out / "generation.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    background: list[Running] = []
    for name in names:
        running = Running(name, options.out, base)
        while not running.poll():
            if running.hung():
                background.append(running)  # sleeping, no CPU: go on with the next run meanwhile
                break
            for other in background:
                other.poll()
            time.sleep(POLL_SECONDS)
        else:
            manifest[name] = running.finish()
            print(f"{name:32s} rc={running.process.returncode:4d} {manifest[name]['seconds']:6.1f}s "
                  f"steps={manifest[name]['last_logged_step']}", flush=True)
    for running in background:
        while not running.poll():
            time.sleep(0.5)
        manifest[running.name] = running.finish()
        print(f"{running.name:32s} rc={running.process.returncode:4d} {manifest[running.name]['seconds']:6.1f}s "
              f"steps={manifest[running.name]['last_logged_step']}", flush=True)
    manifest = {name: manifest[name] for name in RUNS if name in manifest}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(names)} runs in {time.time() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
