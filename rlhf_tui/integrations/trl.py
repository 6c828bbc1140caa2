"""RunLogger: a TRL / transformers `TrainerCallback` that writes a run directory rlhf-top reads.

    trainer = DPOTrainer(..., callbacks=[RunLogger("runs/my-dpo")])

The directory follows Post-Training Toolkit's layout, so PTT's own reader understands it too:

- `metrics.jsonl`: a header (trainer type, `"writer": "rlhf-top"`), one `{"step", "timestamp",
  "metrics"}` record per log call with the raw keys as logged (NaN/Infinity written as JSON tokens),
  eval logs marked `"phase": "eval"`, the end-of-run averages as a `{"type": "summary"}` line, and a
  footer on a normal end. A run resumed from a checkpoint appends a `{"type": "resume"}` line and
  keeps the history; a fresh start replaces the file.
- `run_metadata.json`: trainer, model, dataset size, scalar training arguments, versions, host, pid,
  start/end time and status (running, completed, crashed), rewritten atomically.
- `postmortem.json` on an abnormal end: exit reason (exception, oom, sigterm, sigint), exit code,
  last logged step, full traceback.

Only the main process writes; the callback does no collective operation. A file error is logged
once and swallowed: the callback never stops training.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import itertools
import json
import logging
import os
import platform
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from types import FrameType
from typing import Any, TextIO

from rlhf_tui.core import runlog
from rlhf_tui.core.metrics import normalize_trainer
from rlhf_tui.core.records import EVAL_PREFIX

try:
    from transformers import TrainerCallback
except ImportError as error:
    raise ImportError(
        "rlhf_tui.integrations.trl needs transformers; install it with: pip install 'rlhf-top[trl]'"
    ) from error


_CRASH_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_VERSIONED_DISTRIBUTIONS = ("torch", "transformers", "trl", "rlhf-top")
_temporary_numbers = itertools.count()

log = logging.getLogger(__name__)


def trainer_type_of(args: object) -> str:
    """"dpo", "grpo", ... from the training-arguments class; "unknown" for plain TrainingArguments.

    Matched by class name along the MRO, so TRL need not be imported and subclasses (and new
    trainers built on these configs) are recognised.
    """
    for cls in type(args).__mro__:
        trainer_type = normalize_trainer(cls.__name__)
        if trainer_type is not None:
            return trainer_type
    return "unknown"


class RunLogger(TrainerCallback):
    """Writes `run_dir` (metrics.jsonl, run_metadata.json, postmortem.json) for rlhf-top to follow.

    Crashes are recorded whether or not the caller catches the exception: passed in `callbacks=`,
    the logger wraps that trainer's `train` method, which every exception leaving training goes
    through (`on_train_end` is not called then). A chained `sys.excepthook` covers a logger added
    later with `trainer.add_callback` when the exception is not caught; chained SIGTERM/SIGINT
    handlers record a termination before the previous handler runs. All are restored at the end.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = os.fspath(run_dir)
        self._metrics_file: TextIO | None = None
        self._run_id = ""
        self._started = ""
        self._resumed_from_step: int | None = None
        self._metadata: dict[str, Any] = {}
        self._last_step: int | None = None
        self._warned = False
        self._previous_excepthook: Callable[..., Any] = sys.excepthook
        self._previous_signal_handlers: dict[int, Any] = {}

    # ---- TrainerCallback events ----

    def on_init_end(self, args, state, control, **kwargs):
        with self._shielded("hook crash recording into the trainer"):
            trainer = _trainer_holding(self)
            if trainer is not None:
                trainer.train = self._recording_crashes(trainer.train)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        appending = False
        with self._shielded("open metrics.jsonl"):
            appending = self._open(state)
        if self._metrics_file is None:
            return
        with self._shielded("write metrics.jsonl"):
            self._write_line(self._first_line(args, appending))
        with self._shielded("write run_metadata.json"):
            self._metadata = self._describe_run(
                args, state, kwargs.get("model"), kwargs.get("train_dataloader")
            )
            self._write_metadata()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._metrics_file is None or not logs:
            return
        with self._shielded("write a log record"):
            self._write_line(self._record_for(logs, state.global_step))

    def on_train_end(self, args, state, control, **kwargs):
        if self._metrics_file is None:
            return
        now = _now()
        with self._shielded("write metrics.jsonl"):
            self._write_line(runlog.footer(self._run_id, state.global_step, now))
        with self._shielded("write run_metadata.json"):
            self._metadata.update(status="completed", end_time=now)
            self._write_metadata()
        self._close()

    # ---- writing ----

    def _open(self, state: Any) -> bool:
        """Opens metrics.jsonl for a new session; True when it continues an earlier session's file."""
        # A session whose crash went unrecorded (add_callback, exception caught) is still open.
        self._close()
        os.makedirs(self.run_dir, exist_ok=True)
        started = datetime.now(timezone.utc)
        self._run_id = started.strftime("%Y%m%d_%H%M%S")
        self._started = started.isoformat()
        self._resumed_from_step = state.global_step if state.global_step > 0 else None
        metrics_path = os.path.join(self.run_dir, runlog.METRICS_FILE)
        appending = self._resumed_from_step is not None and _has_content(metrics_path)
        # A postmortem left by an earlier session would make this one look crashed.
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.run_dir, runlog.POSTMORTEM_FILE))
        self._metrics_file = open(metrics_path, "a" if appending else "w", encoding="utf-8")
        self._last_step = self._resumed_from_step
        self._install_crash_handlers()
        return appending

    def _first_line(self, args: Any, appending: bool) -> dict[str, Any]:
        if appending:
            return runlog.resume(self._resumed_from_step, self._started)
        return runlog.header(trainer_type_of(args), self._run_id, self._started, writer=runlog.OWN_WRITER)

    def _describe_run(self, args: Any, state: Any, model: Any, train_dataloader: Any) -> dict[str, Any]:
        max_steps = state.max_steps if state.max_steps > 0 else args.max_steps
        return {
            "schema_version": runlog.SCHEMA_VERSION,
            "writer": runlog.OWN_WRITER,
            "run_id": self._run_id,
            "trainer_type": trainer_type_of(args),
            "config_class": type(args).__name__,
            "model_name": _model_name(model),
            "dataset_size": _dataset_size(train_dataloader),
            "max_steps": max_steps if max_steps > 0 else None,
            "loss_type": getattr(args, "loss_type", None),
            "beta": getattr(args, "beta", None),
            "training_args": _scalar_arguments(args),
            "versions": _versions(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "start_time": self._started,
            "end_time": None,
            "resumed_from_step": self._resumed_from_step,
            "status": "running",
        }

    def _record_for(self, logs: dict[str, Any], step: int) -> dict[str, Any]:
        if "train_loss" in logs and "train_runtime" in logs:
            # The end-of-run averages (train_loss is the run mean): not a step. Step logs carry
            # train_runtime too when include_num_input_tokens_seen is on, but never train_loss.
            return runlog.summary(logs, _now())
        self._last_step = step
        phase = "eval" if any(key.startswith(EVAL_PREFIX) for key in logs) else "train"
        return runlog.step(step, _now(), logs, phase)

    def _write_line(self, obj: dict[str, Any]) -> None:
        self._metrics_file.write(runlog.line(obj, default=_plain))
        # Flushed for a live monitor; no fsync, which would cost milliseconds per record.
        self._metrics_file.flush()

    def _write_metadata(self) -> None:
        _write_json_atomically(os.path.join(self.run_dir, runlog.METADATA_FILE), self._metadata)

    def _close(self) -> None:
        self._restore_crash_handlers()
        metrics_file, self._metrics_file = self._metrics_file, None
        if metrics_file is not None:
            with self._shielded("close metrics.jsonl"):
                metrics_file.close()

    @contextlib.contextmanager
    def _shielded(self, action: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            if not self._warned:
                self._warned = True
                log.warning(
                    "rlhf-top RunLogger could not %s in %s (%s); training goes on, "
                    "further errors will not be reported",
                    action,
                    self.run_dir,
                    error,
                )

    # ---- crash capture ----

    def _recording_crashes(self, train: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(train)
        def train_recording_crashes(*args: Any, **kwargs: Any) -> Any:
            try:
                return train(*args, **kwargs)
            except BaseException as error:
                self._record_exception(error, exit_code=None, caller=sys._getframe(1))
                raise

        return train_recording_crashes

    def _record_exception(
        self, error: BaseException, exit_code: int | None, caller: FrameType | None = None
    ) -> None:
        if self._metrics_file is None:
            return
        with self._shielded("write the postmortem"):
            self._write_postmortem(
                exit_reason=_exit_reason(error),
                exit_code=exit_code,
                traceback_text=_full_traceback(error, caller),
                exception="".join(traceback.format_exception_only(error)).strip(),
            )
        self._close()

    def _record_signal(self, signum: int, frame: Any) -> None:
        if self._metrics_file is None:
            return
        name = signal.Signals(signum).name
        with self._shielded("write the postmortem"):
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            self._write_postmortem(
                exit_reason=name.lower(),
                exit_code=128 + signum,
                traceback_text=f"Stack when {name} arrived (most recent call last):\n{stack}",
                exception=f"{name}: received signal {signum}",
            )
        self._close()

    def _write_postmortem(
        self, exit_reason: str, exit_code: int | None, traceback_text: str, exception: str
    ) -> None:
        now = _now()
        _write_json_atomically(
            os.path.join(self.run_dir, runlog.POSTMORTEM_FILE),
            runlog.postmortem(exit_reason, exit_code, self._last_step, now, traceback_text, exception=exception),
        )
        self._metadata.update(status="crashed", end_time=now)
        self._write_metadata()

    def _install_crash_handlers(self) -> None:
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._on_uncaught_exception
        self._previous_signal_handlers = {}
        for signum in _CRASH_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is None or previous == signal.SIG_IGN:
                continue  # installed outside Python, or ignored: the signal would not end the run
            try:
                signal.signal(signum, self._on_signal)
            except ValueError:
                continue  # not the main thread: only the main thread may install signal handlers
            self._previous_signal_handlers[signum] = previous

    def _restore_crash_handlers(self) -> None:
        # Someone who installed a handler after ours chains to ours: leave theirs in place.
        if sys.excepthook == self._on_uncaught_exception:
            sys.excepthook = self._previous_excepthook
        for signum, previous in self._previous_signal_handlers.items():
            if signal.getsignal(signum) == self._on_signal:
                with self._shielded("restore the previous signal handler"):
                    signal.signal(signum, previous)

    def _on_uncaught_exception(self, exc_type, error, error_traceback) -> None:
        self._record_exception(error, exit_code=130 if isinstance(error, KeyboardInterrupt) else 1)
        self._previous_excepthook(exc_type, error, error_traceback)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._record_signal(signum, frame)
        previous = self._previous_signal_handlers.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            # SIG_DFL: now restored, so the default action ends the process with the usual status.
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


def _trainer_holding(callback: RunLogger) -> Any:
    """The Trainer whose constructor is calling `callback.on_init_end`, found on the call stack.

    Callbacks are never handed the trainer, yet wrapping its `train` is the one way to see an
    exception that leaves training and is then caught by the caller.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        handler = getattr(owner, "callback_handler", None)
        if callback in getattr(handler, "callbacks", ()):
            return owner
        frame = frame.f_back
    return None


def _full_traceback(error: BaseException, caller: FrameType | None) -> str:
    """The traceback Python would print had `error` not been caught: `caller`'s frames come first."""
    report = traceback.TracebackException.from_exception(error)
    if caller is not None:
        report.stack = traceback.StackSummary.from_list(
            [*traceback.extract_stack(caller), *report.stack]
        )
    return "".join(report.format())


def _exit_reason(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "sigint"
    # torch.cuda.OutOfMemoryError, matched by name to keep torch out of this module's imports.
    if type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower():
        return "oom"
    return "exception"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _plain(value: Any) -> Any:
    """JSON fallback for values a trainer may log: numpy and torch scalars, else their text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _has_content(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _write_json_atomically(path: str, obj: dict[str, Any]) -> None:
    directory, name = os.path.split(path)
    # A fresh name per write: a signal handler may write the same file while a write is under way.
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{next(_temporary_numbers)}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(obj, file, indent=2, default=_plain)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _model_name(model: Any) -> str | None:
    for name in (
        getattr(model, "name_or_path", None),
        getattr(getattr(model, "config", None), "_name_or_path", None),
    ):
        if isinstance(name, str) and name:
            return name
    return None


def _dataset_size(train_dataloader: Any) -> int | None:
    try:
        return len(train_dataloader.dataset)
    except (AttributeError, TypeError):  # no dataloader yet, or an iterable dataset
        return None


def _scalar_arguments(args: Any) -> dict[str, Any]:
    """The training arguments that are JSON scalars (to_dict already masks *_token values)."""
    return {
        key: value
        for key, value in args.to_dict().items()
        if value is None or isinstance(value, (bool, int, float, str))
    }


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for distribution in _VERSIONED_DISTRIBUTIONS:
        try:
            versions[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[distribution] = None
    return versions
