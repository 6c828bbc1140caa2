"""RunLogger's writer, driven through the TrainerCallback events with real transformers objects."""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import needs

needs.module("transformers", "pip install -e '.[trl]'")

from transformers import TrainerControl, TrainerState, TrainingArguments  # noqa: E402
from transformers.trainer_callback import CallbackHandler  # noqa: E402

from rlhf_tui.integrations.trl import RunLogger, trainer_type_of  # noqa: E402

DPOConfig = type("DPOConfig", (TrainingArguments,), {})


def make_args(tmp_path: Path, config_class: type = DPOConfig, **overrides) -> TrainingArguments:
    settings = dict(output_dir=str(tmp_path / "out"), report_to="none", max_steps=5, logging_steps=1)
    settings.update(overrides)
    return config_class(**settings)


def begin(logger: RunLogger, args: TrainingArguments, global_step: int = 0, **state_fields) -> TrainerState:
    state = TrainerState(max_steps=args.max_steps, global_step=global_step, **state_fields)
    logger.on_train_begin(args, state, TrainerControl())
    return state


def log(logger: RunLogger, args, state: TrainerState, step: int, logs: dict) -> None:
    state.global_step = step
    logger.on_log(args, state, TrainerControl(), logs=logs)


def end(logger: RunLogger, args, state: TrainerState) -> None:
    logger.on_train_end(args, state, TrainerControl())


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(autouse=True)
def crash_handlers_are_restored():
    before = (sys.excepthook, signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    yield
    after = (sys.excepthook, signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert after == before


CONFIG_CLASSES = {
    "DPOConfig": "dpo",
    "GRPOConfig": "grpo",
    "SFTConfig": "sft",
    "KTOConfig": "kto",
    "ORPOConfig": "orpo",
    "CPOConfig": "cpo",
    "RLOOConfig": "rloo",
    "PPOConfig": "ppo",
    "OnlineDPOConfig": "online_dpo",
    "RewardConfig": "reward",
    "GKDConfig": "gkd",
    "AsyncGRPOConfig": "async_grpo",
}


@pytest.mark.parametrize(("class_name", "trainer_type"), sorted(CONFIG_CLASSES.items()))
def test_trainer_type_comes_from_the_config_class_and_its_subclasses(tmp_path, class_name, trainer_type):
    config_class = type(class_name, (TrainingArguments,), {})
    subclass = type("MyTeamConfig", (config_class,), {})
    assert trainer_type_of(make_args(tmp_path, config_class)) == trainer_type
    assert trainer_type_of(make_args(tmp_path, subclass)) == trainer_type


def test_plain_training_arguments_are_an_unknown_trainer(tmp_path):
    assert trainer_type_of(make_args(tmp_path, TrainingArguments)) == "unknown"


def test_a_normal_run_writes_header_records_summary_footer_and_metadata(tmp_path):
    args = make_args(tmp_path, hub_token="hf_secret_value")
    logger = RunLogger(tmp_path / "run")
    state = begin(logger, args)
    log(logger, args, state, 1, {"loss": 0.6931, "rewards/accuracies": 0.5, "grad_norm": float("nan")})
    log(logger, args, state, 2, {"loss": float("inf"), "rewards/margins": np.float32(0.25), "epoch": 0.4})
    log(logger, args, state, 2, {"eval_loss": 0.69, "eval_rewards/accuracies": 0.5, "epoch": 0.4})
    log(logger, args, state, 2, {"train_runtime": 1.5, "train_loss": 0.68, "epoch": 0.4})
    end(logger, args, state)

    metrics_path = tmp_path / "run" / "metrics.jsonl"
    text = metrics_path.read_text()
    assert '"grad_norm": NaN' in text and '"loss": Infinity' in text
    header, first, second, evaluation, summary, footer = read_lines(metrics_path)
    assert header["type"] == "header" and header["writer"] == "rlhf-top"
    assert header["schema_version"] == "1.0" and header["trainer_type"] == "dpo"
    assert header["run_id"] and header["timestamp"]
    assert first["step"] == 1 and first["metrics"]["rewards/accuracies"] == 0.5
    assert math.isnan(first["metrics"]["grad_norm"]) and "phase" not in first
    assert second["step"] == 2 and second["metrics"]["rewards/margins"] == 0.25
    assert math.isinf(second["metrics"]["loss"])
    assert evaluation["phase"] == "eval" and evaluation["step"] == 2
    assert evaluation["metrics"] == {"eval_loss": 0.69, "eval_rewards/accuracies": 0.5, "epoch": 0.4}
    assert summary["type"] == "summary" and "step" not in summary
    assert summary["metrics"]["train_loss"] == 0.68
    assert footer == {
        "type": "footer",
        "run_id": header["run_id"],
        "status": "completed",
        "total_steps": 2,
        "timestamp": footer["timestamp"],
    }

    metadata = read_json(tmp_path / "run" / "run_metadata.json")
    assert metadata["status"] == "completed" and metadata["end_time"]
    assert metadata["trainer_type"] == "dpo" and metadata["config_class"] == "DPOConfig"
    assert metadata["max_steps"] == 5 and metadata["pid"] == os.getpid()
    assert metadata["resumed_from_step"] is None
    assert metadata["versions"]["python"] and metadata["versions"]["transformers"]
    training_args = metadata["training_args"]
    assert training_args["logging_steps"] == 1 and training_args["max_steps"] == 5
    assert "report_to" not in training_args  # a list, not a scalar
    scalar = (bool, int, float, str, type(None))
    assert all(isinstance(value, scalar) for value in training_args.values())
    assert "hf_secret_value" not in (tmp_path / "run" / "run_metadata.json").read_text()
    assert not (tmp_path / "run" / "postmortem.json").exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_a_step_log_with_throughput_is_still_a_step(tmp_path):
    args = make_args(tmp_path, include_num_input_tokens_seen="all")
    logger = RunLogger(tmp_path / "run")
    state = begin(logger, args)
    log(logger, args, state, 1, {"loss": 0.7, "num_input_tokens_seen": 512, "train_runtime": 0.4})
    end(logger, args, state)
    record = read_lines(tmp_path / "run" / "metrics.jsonl")[1]
    assert record["step"] == 1 and record["metrics"]["train_runtime"] == 0.4


def test_each_record_is_on_disk_as_soon_as_it_is_logged(tmp_path):
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "run")
    state = begin(logger, args)
    metadata = read_json(tmp_path / "run" / "run_metadata.json")
    assert metadata["status"] == "running" and metadata["end_time"] is None
    log(logger, args, state, 1, {"loss": 0.7})
    assert read_lines(tmp_path / "run" / "metrics.jsonl")[-1]["metrics"] == {"loss": 0.7}
    end(logger, args, state)


def test_resuming_from_a_checkpoint_appends_after_a_marker(tmp_path):
    args = make_args(tmp_path)
    run_dir = tmp_path / "run"
    first_session = RunLogger(run_dir)
    state = begin(first_session, args)
    for step in (1, 2, 3):
        log(first_session, args, state, step, {"loss": 1.0 / step})
    end(first_session, args, state)
    (run_dir / "postmortem.json").write_text('{"exit_reason": "exception"}')

    second_session = RunLogger(run_dir)
    state = begin(second_session, args, global_step=2)
    for step in (3, 4):
        log(second_session, args, state, step, {"loss": 0.1 * step})
    end(second_session, args, state)

    lines = read_lines(run_dir / "metrics.jsonl")
    assert [line.get("type") for line in lines] == [
        "header", None, None, None, "footer", "resume", None, None, "footer",
    ]
    resume = lines[5]
    assert resume["from_step"] == 2 and "step" not in resume
    assert [line["step"] for line in lines if "step" in line] == [1, 2, 3, 3, 4]
    assert not (run_dir / "postmortem.json").exists()
    assert read_json(run_dir / "run_metadata.json")["resumed_from_step"] == 2


def test_a_fresh_start_replaces_an_old_log(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 40, "metrics": {"loss": 9.0}}\n')
    (run_dir / "postmortem.json").write_text('{"exit_reason": "oom"}')
    args = make_args(tmp_path)
    logger = RunLogger(run_dir)
    state = begin(logger, args)
    log(logger, args, state, 1, {"loss": 0.5})
    end(logger, args, state)
    assert [line.get("step") for line in read_lines(run_dir / "metrics.jsonl")] == [None, 1, None]
    assert not (run_dir / "postmortem.json").exists()


def test_only_the_main_process_writes(tmp_path):
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "run")
    state = begin(logger, args, is_world_process_zero=False)
    log(logger, args, state, 1, {"loss": 0.5})
    end(logger, args, state)
    assert not (tmp_path / "run").exists()


def test_an_unusable_directory_is_reported_once_and_training_goes_on(tmp_path, caplog):
    (tmp_path / "a_file").write_text("not a directory")
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "a_file" / "run")
    with caplog.at_level(logging.WARNING):
        state = begin(logger, args)
        log(logger, args, state, 1, {"loss": 0.5})
        end(logger, args, state)
    warnings = [r for r in caplog.records if r.name == "rlhf_tui.integrations.trl"]
    assert len(warnings) == 1 and "a_file" in warnings[0].getMessage()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_reported_once_and_training_goes_on(tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").symlink_to("/dev/full")
    args = make_args(tmp_path)
    logger = RunLogger(run_dir)
    with caplog.at_level(logging.WARNING):
        state = begin(logger, args)
        for step in (1, 2, 3):
            log(logger, args, state, step, {"loss": 0.5})
        end(logger, args, state)
    warnings = [r for r in caplog.records if r.name == "rlhf_tui.integrations.trl"]
    assert len(warnings) == 1 and "No space left" in warnings[0].getMessage()
    assert read_json(run_dir / "run_metadata.json")["status"] == "completed"


class MinimalTrainer:
    """Calls its callbacks the way transformers.Trainer does; its training loop fails at step 2."""

    def __init__(self, args: TrainingArguments, callbacks: list, error: BaseException) -> None:
        self.args = args
        self.state = TrainerState(max_steps=args.max_steps)
        self.control = TrainerControl()
        self.error = error
        self.callback_handler = CallbackHandler(callbacks, None, None, None, None)
        self.callback_handler.on_init_end(self.args, self.state, self.control)

    def train(self) -> None:
        self.callback_handler.on_train_begin(self.args, self.state, self.control)
        self.state.global_step = 1
        self.callback_handler.on_log(self.args, self.state, self.control, {"loss": 0.69})
        self.state.global_step = 2
        raise self.error


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError."""


@pytest.mark.parametrize(
    ("error", "exit_reason", "exception"),
    [
        (RuntimeError("boom at step 2"), "exception", "RuntimeError: boom at step 2"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom", None),
        (OutOfMemoryError("CUDA error"), "oom", None),
        (KeyboardInterrupt(), "sigint", "KeyboardInterrupt"),
    ],
)
def test_an_exception_leaving_train_is_recorded_even_when_the_caller_catches_it(
    tmp_path, error, exit_reason, exception
):
    run_dir = tmp_path / "run"
    trainer = MinimalTrainer(make_args(tmp_path), [RunLogger(run_dir)], error)
    with pytest.raises(type(error)):
        trainer.train()

    postmortem = read_json(run_dir / "postmortem.json")
    assert postmortem["exit_reason"] == exit_reason
    assert postmortem["exit_code"] is None and postmortem["last_step"] == 1
    assert postmortem["timestamp"]
    if exception is not None:
        assert postmortem["exception"] == exception
    assert postmortem["traceback"].startswith("Traceback (most recent call last):")
    assert "raise self.error" in postmortem["traceback"]
    assert read_json(run_dir / "run_metadata.json")["status"] == "crashed"
    assert "footer" not in [line.get("type") for line in read_lines(run_dir / "metrics.jsonl")]


def test_an_uncaught_exception_is_recorded_by_the_chained_excepthook(tmp_path, monkeypatch):
    seen = []

    def previous_hook(*exc_info):
        seen.append(exc_info)

    monkeypatch.setattr(sys, "excepthook", previous_hook)
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "run")  # as if added with add_callback: no train() wrapper
    state = begin(logger, args)
    log(logger, args, state, 3, {"loss": 0.5})
    assert sys.excepthook is not previous_hook
    try:
        raise ValueError("bad batch")
    except ValueError as error:
        exc_info = (type(error), error, error.__traceback__)
    sys.excepthook(*exc_info)

    assert seen == [exc_info]
    assert sys.excepthook is previous_hook
    postmortem = read_json(tmp_path / "run" / "postmortem.json")
    assert postmortem["exit_reason"] == "exception" and postmortem["exit_code"] == 1
    assert postmortem["last_step"] == 3 and postmortem["exception"] == "ValueError: bad batch"
    assert 'raise ValueError("bad batch")' in postmortem["traceback"]


def test_training_again_after_an_unrecorded_crash_does_not_chain_to_itself(tmp_path, monkeypatch):
    seen = []

    def previous_hook(*exc_info):
        seen.append(exc_info)

    monkeypatch.setattr(sys, "excepthook", previous_hook)
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "run")
    begin(logger, args)
    begin(logger, args)
    error = ValueError("second attempt failed too")
    sys.excepthook(ValueError, error, None)
    assert seen == [(ValueError, error, None)]
    assert sys.excepthook is previous_hook


def test_a_hook_installed_after_ours_is_left_in_place(tmp_path):
    original = sys.excepthook
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "run")
    state = begin(logger, args)
    ours = sys.excepthook

    def theirs(*exc_info):
        ours(*exc_info)

    sys.excepthook = theirs
    try:
        end(logger, args, state)
        assert sys.excepthook is theirs
    finally:
        sys.excepthook = original


def test_sigterm_is_recorded_then_handed_to_the_previous_handler(tmp_path):
    received = []

    def previous_handler(signum, frame):
        received.append(signum)

    original = signal.signal(signal.SIGTERM, previous_handler)
    try:
        args = make_args(tmp_path)
        logger = RunLogger(tmp_path / "run")
        state = begin(logger, args)
        log(logger, args, state, 4, {"loss": 0.5})
        signal.raise_signal(signal.SIGTERM)
        assert received == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is previous_handler
    finally:
        signal.signal(signal.SIGTERM, original)

    postmortem = read_json(tmp_path / "run" / "postmortem.json")
    assert postmortem["exit_reason"] == "sigterm" and postmortem["exit_code"] == 143
    assert postmortem["last_step"] == 4 and postmortem["exception"] == "SIGTERM: received signal 15"
    assert "test_sigterm_is_recorded_then_handed_to_the_previous_handler" in postmortem["traceback"]
    assert read_json(tmp_path / "run" / "run_metadata.json")["status"] == "crashed"


def test_sigint_is_recorded_and_still_raises_keyboard_interrupt(tmp_path):
    # Python's own handler, as a training script in a terminal has it: a shell starts background
    # jobs (CI's included) with SIGINT ignored, and RunLogger rightly leaves an ignored signal alone.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        args = make_args(tmp_path)
        logger = RunLogger(tmp_path / "run")
        begin(logger, args)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
    postmortem = read_json(tmp_path / "run" / "postmortem.json")
    assert postmortem["exit_reason"] == "sigint" and postmortem["exit_code"] == 130


def test_an_ignored_sigint_stays_ignored(tmp_path):
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)  # nohup'd or backgrounded: Ctrl-C is not for it
    try:
        logger, args = RunLogger(tmp_path / "run"), make_args(tmp_path)
        state = begin(logger, args)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        end(logger, args, state)
    finally:
        signal.signal(signal.SIGINT, inherited)


def test_sigterm_with_the_default_action_still_ends_the_process(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from transformers import TrainerControl, TrainerState, TrainingArguments
        from rlhf_tui.integrations.trl import RunLogger

        args = TrainingArguments(output_dir={str(tmp_path / "out")!r}, report_to="none", max_steps=5)
        logger = RunLogger({str(tmp_path / "run")!r})
        state = TrainerState(max_steps=5)
        logger.on_train_begin(args, state, TrainerControl())
        state.global_step = 1
        logger.on_log(args, state, TrainerControl(), logs={{"loss": 0.7}})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
        print("still alive")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == -signal.SIGTERM, result.stderr
    assert "still alive" not in result.stdout
    postmortem = read_json(tmp_path / "run" / "postmortem.json")
    assert postmortem["exit_reason"] == "sigterm" and postmortem["last_step"] == 1


def test_outside_the_main_thread_signals_are_left_alone_and_logging_works(tmp_path):
    args = make_args(tmp_path)
    logger = RunLogger(tmp_path / "run")
    sigterm_before = signal.getsignal(signal.SIGTERM)
    seen_in_thread = []

    def train_in_thread():
        state = begin(logger, args)
        seen_in_thread.append(signal.getsignal(signal.SIGTERM))
        log(logger, args, state, 1, {"loss": 0.5})
        end(logger, args, state)

    thread = threading.Thread(target=train_in_thread)
    thread.start()
    thread.join()
    assert seen_in_thread == [sigterm_before]
    assert read_lines(tmp_path / "run" / "metrics.jsonl")[-1]["type"] == "footer"


def test_importing_without_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "rlhf_tui.integrations.trl")
    monkeypatch.delitem(sys.modules, "rlhf_tui.integrations")
    importlib.import_module("rlhf_tui.integrations")
    with pytest.raises(ImportError, match=r"pip install 'rlhf-top\[trl\]'"):
        importlib.import_module("rlhf_tui.integrations.trl")
