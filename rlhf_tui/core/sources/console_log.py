"""Captured training stdout/stderr (`train.log`, `*.log`, `*.out`, `nohup.out`, `slurm-*.out`).

What it finds:

- transformers' log dicts, `{'loss': '0.6931', 'epoch': '0.03125'}` (5.x prints strings, 4.x floats,
  `nan`/`inf` bare, `np.float64(...)` under numpy 2), parsed as data (JSON, else a regex over
  `'key': value` pairs), never evaluated; values that are not numbers are skipped. `eval_*` keys
  become an "eval" record with the prefix stripped; the end-of-run `{'train_runtime': ...}` dict
  becomes `facts["summary"]` and `finished`.
- `max_steps`: the total of the training progress bar, the tqdm bar without a description that is
  not nested (nested bars such as the eval loop's end with a cursor-up escape). Until a log dict is
  tied to a bar the latest such bar counts, so an evaluation before training cannot pin it.
- tracebacks (also when they start mid-line after a tqdm fragment, chained ones, `[rankN]:`
  prefixes) and crash signatures (OOM, NCCL, torchrun, SLURM, `Killed`, segfault, Ctrl-C). The
  most specific evidence seen since the last logged step wins (SIGNATURES' priorities: a cause such
  as OOM over a plain exception, that over torchrun's report that a worker died); a train log dict
  after it clears it.

The step of a log dict. The dicts carry no step, and the bar counter printed just before a dict
lags: tqdm redraws at most every 0.1 s, so on fast steps the bar before step 9's dict still says
8/30 (it is right on only 32 of the 161 dicts of the real CPU runs). But transformers updates the
bar in `on_step_end`, before `on_log`, and prints the dict with `tqdm.write`, which clears the bar
(a blank `\\r`-segment), writes the dict and redraws the bar at once. So:

1. A dict right after that blank clearing segment takes the counter of the first training-bar
   redraw after it. It is held back until that redraw, which normally arrives in the same write;
   the unterminated tail of the file is looked at for it so a live run is not a line late.
2. Any other dict (no progress bar: `disable_tqdm`, `print`ed logs; block-buffered stdout, where
   dicts arrive in bursts detached from the bar) and a held dict overtaken by another dict, a
   traceback or the summary before its redraw: the previous train step + 1 (logging_steps = 1).
   An eval dict gets the step of the last train dict.

Rule 1 matches the checkpoints' log_history on every dict of the four real TRL runs and of two
Trainer runs with logging_steps=5 and evaluation (tests/fixtures/console).

Other trainers print their step with their metrics, and it is taken as printed: verl's console
logger (`step:12 - actor/pg_loss:0.01 - critic/score/mean:0.5`, numpy scalars as `np.float64(..)`),
OpenRLHF's PPO trainer (`✨ Global step 12: {'policy_loss': 0.01, ...}`) and the postfix of its
DPO/SFT/RM progress bar (`Train step of epoch 0:  10%|█| 10/100 [00:10<01:30, 1.0it/s, loss=0.69,
acc=0.5]`). That postfix is set just before the bar counts the step, so it belongs to the step
after the counter shown; the step counts micro-batches from the first epoch on.

Bad input never raises: invalid UTF-8 is replaced, ANSI escapes stripped, a segment over 1 MiB is
skipped; each becomes a short note.
"""

from __future__ import annotations

import dataclasses
import re
import signal
from collections import deque
from typing import NamedTuple

import msgspec

from rlhf_tui.core.records import Crash, NoteBudget, Record, Update, split_eval

MAX_SEGMENT_BYTES = 1024 * 1024
TRACEBACK_HEAD_LINES = 100
TRACEBACK_TAIL_LINES = 300
MAX_CONTINUATION_LINES = 100
MAX_TEXT_CHARS = 2000

TRACEBACK_START = "Traceback (most recent call last):"
CHAIN_MARKERS = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_RANK_PREFIX = re.compile(r"\[(?:rank|default)\d+\]: ?")  # torchrun's per-worker line prefix
# tqdm: `{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate}]`
_BAR = re.compile(r"([^|]*)\|[^|]*\| *(\d{1,15})/(\d{1,15}) \[[^\]]*\]")
# `'key': value` with value quoted (5.x), bare (4.x, nan, -inf) or np.float64(...) (numpy 2).
_PAIR = re.compile(r"'([^'\\]*)': (?:np\.float\d+\()?'?([-+.\w]+)")
_CRASH_WORDS = re.compile(
    r"CANCELLED|out of memory|OutOfMemory|CUBLAS_STATUS_ALLOC|DefaultCPUAllocator|oom[-_]kill"
    r"|out-of-memory|NCCL|nccl|Segmentation|ChildFailedError|KeyboardInterrupt|SignalException"
    r"|death signal|Killed"
)
_NUMBER_TYPES = frozenset((int, float))  # not bool: JSON true/false are not metrics
# verl/utils/logger/aggregate_logger.py, concat_dict_to_str: "step:{step} - {k}:{pformat(v)} - ..."
_VERL_LINE = re.compile(r"step:(\d{1,15}) - (.*)")
_VERL_VALUE = re.compile(r"(?:np\.\w+\()?([-+.\w]+)\)?")
# openrlhf/trainer/ppo_trainer.py: logger.info(f"✨ Global step {global_step}: {log_status}")
_GLOBAL_STEP = re.compile(r"Global step (\d{1,15}): (\{'.*\})\s*$")
# openrlhf/trainer/{dpo,sft,rm}_trainer.py: tqdm(desc="Train step of epoch %d" % epoch), set_postfix(logs)
_EPOCH_BAR = re.compile(r"Train step of epoch (\d{1,9}):")
_POSTFIX_PAIR = re.compile(r"([^\s=,][^=,]*)=([-+.\w]+)")
_CHILD_DETAIL = re.compile(r"\s*(rank|exitcode)\s*: (-?\d{1,9})\b")


class _Signature(NamedTuple):
    pattern: re.Pattern[str]
    reason: str
    label: str
    priority: int


# Priorities: a higher one wins over a lower one seen since the last logged step. torchrun's
# ChildFailedError ranks below a plain exception: it only says that a worker died, the worker's own
# traceback says why; alone (a worker killed by a signal) it stands.
GENERIC_EXCEPTION_PRIORITY = 2

# First match wins, so the specific spellings come before the general ones.
SIGNATURES = tuple(
    _Signature(re.compile(pattern), reason, label, priority)
    for pattern, reason, label, priority in (
        (r"CANCELLED AT \S+ DUE TO TIME LIMIT", "time_limit", "SLURM time limit", 5),
        (r"CANCELLED AT \S+ DUE TO PREEMPTION", "preempted", "preempted by SLURM", 5),
        (r"\*\*\* (?:JOB|STEP) .*CANCELLED AT", "sigterm", "SLURM job cancelled", 5),
        (r"HIP out of memory", "oom", "HIP out of memory", 4),
        (r"CUBLAS_STATUS_ALLOC_FAILED", "oom", "CUDA out of memory (cuBLAS allocation)", 4),
        (r"CUDA out of memory|CUDA error: out of memory", "oom", "CUDA out of memory", 4),
        (r"OutOfMemoryError", "oom", "GPU out of memory", 4),
        (
            r"DefaultCPUAllocator: (?:not enough memory|can't allocate memory)",
            "oom",
            "CPU out of memory",
            4,
        ),
        (r"oom[-_]kill|out-of-memory handler", "killed", "killed by the OOM killer", 4),
        (r"Watchdog caught collective operation timeout", "nccl", "NCCL watchdog timeout", 4),
        (
            r"\[E[^\]]*ProcessGroupNCCL\.cpp:\d+\].*(?:timed out|[Tt]imeout)",
            "nccl",
            "NCCL timeout",
            4,
        ),
        (
            r"NCCL error|nccl(?:UnhandledCudaError|SystemError|InternalError|InvalidArgument"
            r"|InvalidUsage|RemoteError)",
            "nccl",
            "NCCL error",
            4,
        ),
        (r"Segmentation fault", "segfault", "segmentation fault", 4),
        (r"^KeyboardInterrupt\b", "sigint", "interrupted (Ctrl-C)", 3),
        (r"SignalException.*got signal: 2\b", "sigint", "received SIGINT", 3),
        (r"SignalException.*got signal: 15\b", "sigterm", "received SIGTERM", 3),
        (r"SignalException.*got signal: 1\b", "sigterm", "received SIGHUP", 3),
        (r"SignalException.*got signal: 9\b", "sigkill", "received SIGKILL", 3),
        (r"Received (?:Signals\.)?SIGTERM death signal", "sigterm", "received SIGTERM", 3),
        (r"Received (?:Signals\.)?SIGINT death signal", "sigint", "received SIGINT", 3),
        (
            r"^\s*Killed\s*$|: line \d+: +\d+ Killed\b|: tasks? [\d,-]+: Killed\b",
            "killed",
            "killed (SIGKILL)",
            3,
        ),
        (r"ChildFailedError", "child_failed", "torchrun worker failed", 1),
    )
)


def _match_signature(line: str) -> _Signature | None:
    for signature in SIGNATURES:
        if signature.pattern.search(line):
            return signature
    return None


def _exit_description(exitcode: int) -> str:
    """`-9` -> `-9 (SIGKILL)`: torchrun reports a worker killed by signal N as exit code -N."""
    if exitcode < 0:
        try:
            return f"{exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            pass
    return str(exitcode)


class _Traceback:
    """A Python traceback being collected, chained exceptions and the exception's message too."""

    def __init__(self, first_line: str) -> None:
        self.head = [first_line[:MAX_TEXT_CHARS]]
        self.tail: deque[str] = deque(maxlen=TRACEBACK_TAIL_LINES)
        self.count = 1
        self.in_frames = True
        self.blank_after_exception = False
        self.continuation = 0

    def add(self, line: str) -> None:
        """Keep the start and the end (where the exception is) of a very long traceback."""
        self.count += 1
        if len(self.head) < TRACEBACK_HEAD_LINES:
            self.head.append(line[:MAX_TEXT_CHARS])
        else:
            self.tail.append(line[:MAX_TEXT_CHARS])

    def text(self) -> str:
        omitted = self.count - len(self.head) - len(self.tail)
        middle = [f"... {omitted} lines not kept ..."] if omitted else []
        return "\n".join([*self.head, *middle, *self.tail])


class _Pending(NamedTuple):
    """A log dict waiting for the progress-bar redraw that tells its step."""

    train: dict[str, float] | None
    eval: dict[str, float] | None


class ConsoleLogReader:
    """Incremental reader of a console log: feed it the bytes appended to the file, any split."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._partial = b""
        self._skipping = False  # inside a segment over MAX_SEGMENT_BYTES, until its end arrives
        self._line_no = 1
        self._line_started = False  # segments of the current line were read before its \n came
        self._update = Update()
        self._notes = NoteBudget("more notes about bad input not shown")
        self._noted_kinds: set[str] = set()
        self._after_clear = False  # the last non-empty segment was tqdm.write's blank bar clearing
        self._pending: _Pending | None = None
        self._train_total: int | None = None
        self._train_total_locked = False
        self._last_step: int | None = None
        self._traceback: _Traceback | None = None
        self._crash: Crash | None = None
        self._crash_priority = 0
        self._crash_traceback: _Traceback | None = None
        self._crash_changed = False
        self._child_detail: dict[str, int] = {}

    @property
    def crash(self) -> Crash | None:
        """The current verdict: None again once training logged a step after the evidence."""
        return self._published(self._crash) if self._crash is not None else None

    def feed(self, data: bytes) -> Update:
        self._update = Update()
        if self._skipping:
            cut = _first_separator(data)
            if cut < 0:
                return self._finish()
            if data[cut] == 0x0A:
                self._line_no += 1
                self._line_started = False
            data = data[cut + 1 :]
            self._skipping = False
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        tail = lines.pop()
        for line in lines:
            if line:
                for segment in line.split(b"\r"):
                    self._segment(segment)
            elif not self._line_started and self._traceback is not None:
                self._traceback_line(self._traceback, "")
            self._line_started = False
            self._line_no += 1
        if b"\r" in tail:
            *segments, tail = tail.split(b"\r")
            for segment in segments:
                self._segment(segment)
            self._line_started = True
        if len(tail) > MAX_SEGMENT_BYTES:
            self._too_long()
            self._skipping = True
            self._line_started = True
            tail = b""
        self._partial = tail
        if self._pending is not None and b"%|" in tail:
            self._peek_bar(tail)
        return self._finish()

    # --- segments: the text between two \r or \n -------------------------------------------

    def _segment(self, raw: bytes) -> None:
        if not raw:
            return
        if len(raw) > MAX_SEGMENT_BYTES:
            self._too_long()
            return
        if raw.isspace():
            self._after_clear = True
            return
        after_clear = self._after_clear
        self._after_clear = False
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = raw.decode(errors="replace")
            self._note_once("utf8", "invalid UTF-8 replaced")
        nested = False
        if "\x1b" in text:
            nested = "\x1b[A" in text
            text = _ANSI.sub("", text)
        if text.startswith("["):
            text = _without_rank_prefix(text)
        if "%|" in text:
            bar = _BAR.match(text)
            if bar is not None:
                self._bar(bar, nested)
                epoch = _EPOCH_BAR.match(bar.group(1))
                if epoch is not None:
                    self._epoch_bar(bar, int(epoch.group(1)))
                text = _without_rank_prefix(text[bar.end() :])
                if not text or text.isspace():
                    return
                after_clear = False
        if (text.startswith("step:") or "Global step " in text) and self._stepped_line(text):
            return
        if "{'" in text and self._log_dict(text, after_clear):
            return
        self._text_line(text)

    def _stepped_line(self, text: str) -> bool:
        """verl's and OpenRLHF's PPO metric lines, which say their step; False for any other line."""
        verl = _VERL_LINE.match(text)
        if verl is not None:
            values = {}
            for part in verl.group(2).split(" - "):
                key, colon, raw = part.rpartition(":")
                number = _VERL_VALUE.fullmatch(raw.strip())
                if colon and number is not None:
                    try:
                        values[key] = float(number.group(1))
                    except ValueError:
                        continue
            self._stepped_record(int(verl.group(1)), values)
            return True
        openrlhf = _GLOBAL_STEP.search(text)
        if openrlhf is not None:
            self._stepped_record(int(openrlhf.group(1)), _numeric_values(openrlhf.group(2)))
            return True
        return False

    def _epoch_bar(self, bar: re.Match[str], epoch: int) -> None:
        shown = bar.group(0)
        pairs = _POSTFIX_PAIR.findall(shown[shown.rindex("[") + 1 : -1])
        values = {}
        for key, raw in pairs:
            try:
                values[key.strip()] = float(raw)
            except ValueError:
                continue
        counter, total = int(bar.group(2)), int(bar.group(3))
        if counter >= total:  # the bar's last redraw, when it closes, repeats the last step's values
            return
        step = epoch * total + counter + 1
        if values and (self._last_step is None or step > self._last_step):
            self._stepped_record(step, values)

    def _stepped_record(self, step: int, values: dict[str, float]) -> None:
        self._resolve_pending(None)
        if not values:
            return
        self._update.records.append(Record(step, None, values))
        self._last_step = step
        if self._crash is not None:
            self._clear_crash()

    def _bar(self, bar: re.Match[str], nested: bool) -> None:
        percentage, counter, total_text = bar.groups()
        if nested or not percentage.strip(" ").removesuffix("%").isdigit():
            return  # a nested bar or one with a description: not the training bar
        total = int(total_text)
        if total != self._train_total:
            if self._train_total_locked:
                return
            self._train_total = total
            self._update.facts["max_steps"] = total
        if self._pending is not None:
            self._train_total_locked = True
            self._resolve_pending(int(counter))

    def _peek_bar(self, tail: bytes) -> None:
        """Tie a held dict to a bar redraw that has no terminator yet (it waits for the next one).

        Only once the training bar is known: a nested bar's cursor-up escape, written after it, may
        not be there yet. tqdm nests only other bars (eval, saving), whose totals differ.
        """
        if not self._train_total_locked:
            return
        text = tail.decode(errors="replace")
        nested = "\x1b[A" in text
        text = _without_rank_prefix(_ANSI.sub("", text))
        bar = _BAR.match(text)
        if bar is not None:
            self._bar(bar, nested)

    # --- log dicts and steps ----------------------------------------------------------------

    def _log_dict(self, text: str, after_clear: bool) -> bool:
        """Handle a transformers log dict (it ends its segment); False when the text is not one."""
        printed = text[text.index("{'") :].rstrip()
        if not printed.endswith("}"):
            if "}" not in printed and ("'loss'" in printed or "'epoch'" in printed):
                self._note(f"line {self._line_no}: log dict cut short, skipped")
                return True
            return False
        values = _numeric_values(printed)
        if "train_runtime" in values:
            self._resolve_pending(None)
            values.pop("epoch", None)
            self._update.facts["summary"] = values
            self._update.finished = True
            return True
        if "'eval_" in printed:
            train_values, eval_values = split_eval(values)
        else:
            eval_values = {}
            train_values = values
        if not eval_values and "epoch" not in values and "loss" not in values:
            return False
        if len(train_values) <= ("epoch" in train_values):
            train_values = {}
        if not train_values and not eval_values:
            return True
        if self._traceback is not None and not self._traceback.in_frames:
            self._traceback = None  # output went on: what follows is not the exception's message
        if self._pending is not None:
            self._resolve_pending(None)
        self._pending = _Pending(train_values or None, eval_values or None)
        if not after_clear or self._train_total is None:
            self._resolve_pending(None)
        return True

    def _resolve_pending(self, bar_step: int | None) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        last = self._last_step or 0
        if pending.train is not None:
            step = bar_step if bar_step is not None else last + 1
            self._update.records.append(Record(step, None, pending.train))
            self._last_step = step
            if self._crash is not None:
                self._clear_crash()
        else:
            step = bar_step if bar_step is not None else last
        if pending.eval is not None:
            self._update.records.append(Record(step, None, pending.eval, "eval"))

    # --- tracebacks and crash signatures ----------------------------------------------------

    def _text_line(self, line: str) -> None:
        if "\x00" in line:
            self._note_once("binary", "binary data (NUL bytes)")
        if self._traceback is not None and self._traceback_line(self._traceback, line):
            return
        at = line.find(TRACEBACK_START)
        if at >= 0:
            self._resolve_pending(None)
            self._traceback = _Traceback(line[at:])
            return
        self._signature_line(line)

    def _signature_line(self, line: str) -> None:
        if _CRASH_WORDS.search(line):
            signature = _match_signature(line)
            if signature is not None:
                self._resolve_pending(None)
                self._raise(*signature[1:], evidence=line[:MAX_TEXT_CHARS])

    def _traceback_line(self, tb: _Traceback, line: str) -> bool:
        """Feed a line to the traceback being collected; False once the traceback is over."""
        at = line.find(TRACEBACK_START)
        if tb.in_frames:
            if at >= 0:
                self._traceback = _Traceback(line[at:])
            elif line[:1] in (" ", "\t"):
                tb.add(line)
                self._traceback_grew(tb)
            elif line:
                tb.add(line)
                tb.in_frames = False
                tb.blank_after_exception = False
                tb.continuation = 0
                self._exception_line(line.rstrip()[:MAX_TEXT_CHARS], tb)
            return True
        if not line or line.isspace():
            tb.blank_after_exception = True
            return True
        if line.startswith(CHAIN_MARKERS) or at >= 0:
            if tb.blank_after_exception:
                tb.add("")
            tb.add(line[at:] if at >= 0 else line)
            tb.in_frames = at >= 0
            tb.blank_after_exception = False
            self._traceback_grew(tb)
            return True
        if tb.blank_after_exception or tb.continuation >= MAX_CONTINUATION_LINES:
            self._traceback = None
            return False
        tb.add(line)
        tb.continuation += 1
        self._traceback_grew(tb)
        if self._crash is not None and self._crash.reason == "child_failed":
            self._child_failed_detail(self._crash, line)
        self._signature_line(line)
        return True

    def _exception_line(self, line: str, tb: _Traceback) -> None:
        signature = _match_signature(line)
        if signature is not None:
            self._raise(*signature[1:], exception=line, tb=tb)
        else:
            exception_type = line.split(":", 1)[0].strip().rsplit(".", 1)[-1][:80]
            priority = GENERIC_EXCEPTION_PRIORITY
            self._raise("exception", exception_type, priority, exception=line, tb=tb)

    def _raise(
        self,
        reason: str,
        label: str,
        priority: int,
        exception: str | None = None,
        evidence: str | None = None,
        tb: _Traceback | None = None,
    ) -> None:
        """Record crash evidence unless more specific evidence is already standing.

        On a tie a later exception line wins (the outermost exception of a chain); a later
        signature line does not (every rank repeats the watchdog line).
        """
        if self._crash is not None and (
            priority < self._crash_priority or (priority == self._crash_priority and tb is None)
        ):
            return
        self._crash = Crash(reason, label, exception, evidence, self._last_step, None, self.name)
        self._crash_priority = priority
        self._crash_traceback = tb
        self._crash_changed = True
        self._child_detail = {}

    def _traceback_grew(self, tb: _Traceback) -> None:
        if tb is self._crash_traceback:
            self._crash_changed = True

    def _child_failed_detail(self, crash: Crash, line: str) -> None:
        """torchrun's failure report lists rank and exitcode; the root cause comes last."""
        detail = _CHILD_DETAIL.match(line)
        if detail is None:
            return
        self._child_detail[detail.group(1)] = int(detail.group(2))
        parts = []
        if "rank" in self._child_detail:
            parts.append(f"rank {self._child_detail['rank']}")
        if "exitcode" in self._child_detail:
            parts.append(f"exit code {_exit_description(self._child_detail['exitcode'])}")
        crash.label = f"torchrun worker failed ({', '.join(parts)})"
        self._crash_changed = True

    def _clear_crash(self) -> None:
        self._crash = None
        self._crash_priority = 0
        self._crash_traceback = None
        self._crash_changed = False

    def _published(self, crash: Crash) -> Crash:
        """A copy for the outside, with the traceback text as collected so far."""
        tb = self._crash_traceback
        text = tb.text() if tb is not None else crash.traceback
        return dataclasses.replace(crash, traceback=text)

    # --- notes and the end of a feed --------------------------------------------------------

    def _too_long(self) -> None:
        self._note(f"line {self._line_no}: longer than {MAX_SEGMENT_BYTES >> 20} MiB, skipped")

    def _note_once(self, kind: str, text: str) -> None:
        if kind not in self._noted_kinds:
            self._noted_kinds.add(kind)
            self._note(f"line {self._line_no}: {text}; later ones not reported")

    def _note(self, text: str) -> None:
        self._notes.add(self._update.notes, text)

    def _finish(self) -> Update:
        update = self._update
        if self._crash_changed and self._crash is not None:
            update.crash = self._published(self._crash)
        self._crash_changed = False
        return update


def _numeric_values(printed_dict: str) -> dict[str, float]:
    """The numeric entries of a printed log dict; other values (text, lists, None) are skipped.

    Fast path: a dict of numbers is a few replacements away from JSON (quotes made double, and the
    quotes of 5.x's quoted numbers dropped), which msgspec parses far quicker than a regex pass; ints
    stay ints, as records.Record allows. The rest (bare nan/inf, np.float64(...), text or list
    values) takes the `'key': value` regex.
    """
    as_json = printed_dict.replace("'", '"')
    as_json = as_json.replace('": "', '": ').replace('", "', ', "').replace('"}', "}")
    try:
        parsed = msgspec.json.decode(as_json)
    except (msgspec.DecodeError, RecursionError):
        parsed = None
    if type(parsed) is dict and _NUMBER_TYPES.issuperset(map(type, parsed.values())):
        return parsed
    values = {}
    for key, value in _PAIR.findall(printed_dict):
        try:
            values[key] = float(value)
        except ValueError:
            continue
    return values


def _without_rank_prefix(text: str) -> str:
    prefix = _RANK_PREFIX.match(text)
    return text[prefix.end() :] if prefix else text


def _first_separator(data: bytes) -> int:
    cuts = [cut for cut in (data.find(b"\n"), data.find(b"\r")) if cut >= 0]
    return min(cuts) if cuts else -1
