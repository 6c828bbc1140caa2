"""`train.log`: what `python train.py 2>&1 | tee train.log` captures of a transformers 5.x run: log
dicts with string values printed by `tqdm.write` between `\\r` redraws of the progress bar, and the
traceback when the run dies."""

from __future__ import annotations

from typing import Any

from rlhf_tui.demo.files import AppendedFile

def printed_logs(logs: dict[str, Any]) -> str:
    """A log dict as transformers 5.x prints it: floats as `.4g` strings, ints as they are."""
    return str({key: f"{value:.4g}" if isinstance(value, float) else value for key, value in logs.items()})




_BAR_SYMBOLS = " ▏▎▍▌▋▊▉█"  # tqdm's Unicode bar: eighths of a cell
_BAR_CELLS = 10
_LOADING_WEIGHTS = (
    "\rLoading weights:   0%|          | 0/290 [00:00<?, ?it/s]"
    "\rLoading weights: 100%|██████████| 290/290 [00:00<00:00, 2315.60it/s]\n"
)
# A save draws a nested bar one line down; its cursor-up escape is how readers tell it apart.
_WRITING_SHARDS = (
    "\n\rWriting model shards:   0%|          | 0/1 [00:00<?, ?it/s]\x1b[A"
    "\rWriting model shards: 100%|██████████| 1/1 [00:00<00:00,  1.64it/s]\n"
)


def _interval(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def tqdm_bar(done: int, total: int, elapsed: float) -> str:
    """tqdm's default bar, `  8%|▊         | 5/60 [00:10<01:50,  2.00s/it]`."""
    fraction = done / total
    whole, eighths = divmod(int(fraction * _BAR_CELLS * 8), 8)
    bar = _BAR_SYMBOLS[-1] * whole
    if whole < _BAR_CELLS:
        bar += _BAR_SYMBOLS[eighths] + " " * (_BAR_CELLS - whole - 1)
    if done == 0 or elapsed <= 0:
        timing = f"{_interval(elapsed)}<?, ?it/s"
    else:
        rate = done / elapsed
        speed = f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it"
        timing = f"{_interval(elapsed)}<{_interval((total - done) / rate)}, {speed}"
    return f"{100 * fraction:3.0f}%|{bar}| {done}/{total} [{timing}]"


class ConsoleLog:
    """`train.log`: a transformers 5.x run as `python train.py 2>&1 | tee train.log` captures it.

    The training bar is redrawn in place with `\\r`; a log dict goes through `tqdm.write`, which blanks
    the bar, prints the dict on its own line and draws the bar again.
    """

    def __init__(self, path: str, max_steps: int) -> None:
        self._out = AppendedFile(path)
        self._max_steps = max_steps
        self._bar = ""
        self._out.write(_LOADING_WEIGHTS)
        self.progress(0, 0.0)

    def progress(self, step: int, elapsed: float) -> None:
        self._bar = tqdm_bar(step, self._max_steps, elapsed)
        self._out.write("\r" + self._bar)

    def log(self, logs: dict[str, Any], step: int, elapsed: float) -> None:
        self._out.write(f"\r{' ' * len(self._bar)}\r{printed_logs(logs)}\n")
        self.progress(step, elapsed)

    def checkpoint_saved(self) -> None:
        self._out.write(_WRITING_SHARDS)

    def end(self, summary: dict[str, Any], step: int, elapsed: float) -> None:
        self.log(summary, step, elapsed)
        self._out.write(f"\r{self._bar}\n")

    def died(self, traceback: str) -> None:
        """Python prints the traceback right where the bar left the cursor, mid-line."""
        self._out.write(traceback)

    def close(self) -> None:
        self._out.close()


