import math
import time

import numpy as np

from rlhf_tui.core.records import Crash, Record, Update
from rlhf_tui.core.run import DECIMATED_POINTS, Run, SourceFile


def make_run(tmp_path):
    return Run(str(tmp_path / "runs" / "exp"), str(tmp_path / "runs"))


def source(run, name, logical, kind="metrics"):
    file = SourceFile(f"{run.path}/{name}", kind, logical)
    run.files[file.path] = file
    return file


def records(steps, key="loss", phase="train", t0=1000.0):
    return [Record(s, t0 + s, {key: 1.0 / s}, phase) for s in steps]


def test_name_is_relative_to_root(tmp_path):
    assert make_run(tmp_path).name == "exp"
    assert Run(str(tmp_path), str(tmp_path)).name == tmp_path.name


def test_the_same_steps_from_two_sources_are_not_double_counted(tmp_path):
    run = make_run(tmp_path)
    tb = source(run, "events", "tensorboard", "tensorboard")
    log = source(run, "train.log", "console", "console")
    run.apply(log, Update(records=records(range(1, 11))))
    run.apply(tb, Update(records=records(range(1, 11))))
    assert run.primary == "tensorboard"
    assert len(run.role("loss")) == 10
    assert run.last_step == 10


def test_a_lagging_source_does_not_win(tmp_path):
    run = make_run(tmp_path)
    state = source(run, "checkpoint-10/trainer_state.json", "trainer_state", "trainer_state")
    log = source(run, "train.log", "console", "console")
    run.apply(log, Update(records=records(range(1, 12))))
    run.apply(state, Update(records=records(range(1, 11)), replace=True))
    assert run.primary == "console" and run.last_step == 11


def test_split_step_records_merge_and_repeated_keys_are_ignored(tmp_path):
    run = make_run(tmp_path)
    tb = source(run, "events", "tensorboard", "tensorboard")
    run.apply(tb, Update(records=[Record(1, 1.0, {"loss": 0.7}), Record(1, 1.0, {"kl": 0.0})]))
    run.apply(tb, Update(records=[Record(1, 1.0, {"loss": 99.0}), Record(2, 2.0, {"loss": 0.6, "kl": 0.1})]))
    assert run.series("loss").values.tolist() == [0.7, 0.6]
    assert run.series("kl").steps.tolist() == [1, 2]


def test_eval_keys_are_kept_apart(tmp_path):
    run = make_run(tmp_path)
    f = source(run, "metrics.jsonl", "ptt")
    run.apply(f, Update(records=[Record(5, None, {"loss": 0.5}), Record(5, None, {"loss": 0.9}, "eval")]))
    assert run.series("loss").values.tolist() == [0.5]
    assert run.series("eval_loss").values.tolist() == [0.9]
    assert run.role("eval_loss") is run.series("eval_loss")


def test_nan_is_kept_and_counted(tmp_path):
    run = make_run(tmp_path)
    f = source(run, "metrics.jsonl", "ptt")
    run.apply(f, Update(records=[Record(1, None, {"loss": 0.5}), Record(2, None, {"loss": math.nan})]))
    series = run.role("loss")
    assert len(series) == 2 and series.nonfinite_count == 1
    assert series.finite()[1].tolist() == [0.5]


def test_roles_follow_the_trainer(tmp_path):
    run = make_run(tmp_path)
    f = source(run, "metrics.jsonl", "ptt")
    run.apply(f, Update(facts={"trainer": "dpo", "trainer_evidence": "header"}))
    run.apply(f, Update(records=[Record(1, None, {"dpo_loss": 0.69, "win_rate": 0.5, "reward_mean": 0.0, "reward_std": 0.0})]))
    assert run.roles["loss"] == "dpo_loss"
    assert run.roles["win_rate"] == "win_rate"
    # PTT writes rewards/chosen as reward_mean and margins as reward_std for DPO: not a reward
    assert "reward" not in run.roles and "reward_std" not in run.roles


def test_trainer_evidence_priority(tmp_path):
    run = make_run(tmp_path)
    card = source(run, "README.md", None, "model_card")
    meta = source(run, "run_metadata.json", None, "metadata")
    run.apply(meta, Update(facts={"trainer": "ipo", "trainer_evidence": "config class"}))
    run.apply(card, Update(facts={"trainer": "dpo", "trainer_evidence": "model card"}))
    assert run.trainer == "ipo"


def test_trainer_inferred_from_keys_when_nothing_names_it(tmp_path):
    run = make_run(tmp_path)
    f = source(run, "log.jsonl", "jsonl", "jsonl")
    run.apply(f, Update(records=[Record(1, None, {"loss": 0.1, "frac_reward_zero_std": 0.0, "reward": 0.2})]))
    assert run.trainer == "grpo" and run.roles["reward"] == "reward"


def test_lifecycle_finished_crashed_and_crash_cleared_by_later_training(tmp_path):
    run = make_run(tmp_path)
    log = source(run, "train.log", "console", "console")
    run.apply(log, Update(records=records(range(1, 6))))
    run.apply(log, Update(crash=Crash("exception", "Python exception", "ValueError: x", "Traceback", 5)))
    assert run.lifecycle() == "crashed"
    run.apply(log, Update(records=records(range(6, 8))))
    assert run.crash is None and run.lifecycle() != "crashed"
    run.apply(log, Update(finished=True))
    assert run.lifecycle() == "finished"


def test_postmortem_crash_is_not_cleared_and_specific_cause_wins(tmp_path):
    run = make_run(tmp_path)
    post = source(run, "postmortem.json", None, "postmortem")
    log = source(run, "train.log", "console", "console")
    run.apply(post, Update(crash=Crash("exception", "Python exception", "RuntimeError: x", None, 3)))
    run.apply(log, Update(crash=Crash("oom", "CUDA out of memory", "torch.OutOfMemoryError: CUDA out of memory", "Traceback...", 3)))
    assert run.crash.reason == "oom" and run.crash.traceback == "Traceback..."


def test_stalled_and_killed(tmp_path):
    run = make_run(tmp_path)
    log = source(run, "metrics.jsonl", "ptt")
    now = time.time()
    run.apply(log, Update(records=[Record(s, now - 1000 + s, {"loss": 1.0}) for s in range(1, 5)]))
    assert run.lifecycle(now) == "stalled"
    assert run.lifecycle(now - 990) == "running"
    run.process_alive = False
    assert run.lifecycle(now) == "killed"


def test_quiet_for_a_day_a_run_has_stopped_unless_its_process_still_lives(tmp_path):
    run = make_run(tmp_path)
    log = source(run, "metrics.jsonl", "ptt")
    run.apply(log, Update(records=[Record(s, 1000.0 + s, {"loss": 1.0}) for s in range(1, 5)]))
    assert run.lifecycle(1004 + 6 * 3600) == "stalled"  # the night's hung job, seen in the morning
    assert run.lifecycle(1004 + 73 * 86400) == "stopped"  # an old sweep copied from a cluster
    run.process_alive = True
    assert run.lifecycle(1004 + 73 * 86400) == "stalled"


def test_rewind_is_noted(tmp_path):
    run = make_run(tmp_path)
    f = source(run, "metrics.jsonl", "ptt")
    run.apply(f, Update(records=records(range(1, 11))))
    run.apply(f, Update(records=records(range(5, 13))))
    assert run.last_step == 12 and len(run.role("loss")) == 12
    assert any("went back to 5" in note for note in run.notes)


def test_memory_per_point_is_small(tmp_path):
    run = make_run(tmp_path)
    run.full_resolution = True  # no key decimated
    f = source(run, "metrics.jsonl", "ptt")
    run.apply(f, Update(records=[Record(s, float(s), {f"k{i}": 0.1 for i in range(10)}) for s in range(20000)]))
    assert run.points() == 200000 and run.nbytes() / run.points() < 12  # steps kept once for all ten keys


def test_keys_no_role_is_read_from_are_decimated_keeping_extremes(tmp_path):
    steps = range(1, 20001)
    spike = {5000: 99.0, 12345: -99.0}

    def values(s):
        return {"loss": 1.0 / s, "my/custom": spike.get(s, float(s % 7)), "grad_norm_max": 1.0}

    run = make_run(tmp_path)
    f = source(run, "metrics.jsonl", "ptt")
    run.apply(f, Update(records=[Record(s, None, values(s)) for s in steps[:15000]]))
    run.apply(f, Update(records=[Record(s, None, values(s)) for s in steps[15000:]]))
    assert len(run.role("loss")) == 20000
    custom = run.series("my/custom")
    assert len(custom) <= 2 * DECIMATED_POINTS and custom.appended == 20000
    assert {99.0, -99.0} <= set(custom.values.tolist()) and custom.steps[-1] == 20000
    assert bool((np.diff(custom.steps) > 0).all())
    on_screen = make_run(tmp_path)
    on_screen.full_resolution = True
    g = source(on_screen, "metrics.jsonl", "ptt")
    on_screen.apply(g, Update(records=[Record(s, None, values(s)) for s in steps]))
    assert len(on_screen.series("my/custom")) == 20000
