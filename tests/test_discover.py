import os

from rlhf_tui.core.discover import classify, discover, owning_run


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_real_runs_are_four_runs_with_their_artefacts(real_runs):
    found = discover([str(real_runs)])
    assert sorted(os.path.basename(r) for r in found.runs) == ["dpo_crash", "dpo_stuck", "grpo_small", "sft_small"]
    kinds = set(found.runs[str(real_runs / "dpo_crash")].values())
    assert kinds == {"console", "metadata", "metrics", "model_card", "postmortem", "tensorboard", "trainer_state"}


def test_classify():
    assert classify("metrics.jsonl") == "metrics"
    assert classify("run_metadata_final.json") == "metadata"
    assert classify("events.out.tfevents.1795656778.vm.23854.0") == "tensorboard"
    assert classify("slurm-1234.out") == "console"
    assert classify("nohup.out") == "console"
    assert classify("model.safetensors") is None
    assert classify("rollouts.jsonl") == "jsonl"


def test_subfolders_belong_to_the_run_above_but_never_above_the_root(tmp_path):
    root = str(tmp_path / "runs")
    assert owning_run(f"{root}/exp/ptt", "metrics", root) == f"{root}/exp"
    assert owning_run(f"{root}/exp/checkpoint-5", "trainer_state", root) == f"{root}/exp"
    assert owning_run(f"{root}/exp/runs/Nov26_vm", "tensorboard", root) == f"{root}/exp"
    # plain TensorBoard usage: SummaryWriter("runs/exp1") under the root "runs"
    assert owning_run(f"{root}/exp1", "tensorboard", root) == f"{root}/exp1"


def test_skips_venvs_git_and_node_modules_and_respects_depth(tmp_path):
    touch(tmp_path / ".git/logs/train.log")
    touch(tmp_path / "node_modules/x/train.log")
    touch(tmp_path / "env/pyvenv.cfg")
    touch(tmp_path / "env/lib/train.log")
    touch(tmp_path / "a/b/c/d/train.log")
    touch(tmp_path / "ok/train.log")
    found = discover([str(tmp_path)], max_depth=3)
    assert sorted(os.path.relpath(r, tmp_path) for r in found.runs) == ["ok"]


def test_symlink_loop_is_noted_not_followed_forever(tmp_path):
    touch(tmp_path / "run/train.log")
    os.symlink(tmp_path, tmp_path / "run/loop")
    found = discover([str(tmp_path)])
    assert list(found.runs) == [str(tmp_path / "run")]
    assert any("symlink" in note for note in found.notes)


def test_unreadable_directory_is_a_note(tmp_path):
    touch(tmp_path / "good/train.log")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        found = discover([str(tmp_path)])
    finally:
        locked.chmod(0o755)
    assert str(tmp_path / "good") in found.runs
    if os.geteuid() != 0:
        assert any("locked" in note for note in found.notes)


def test_missing_root_is_a_note(tmp_path):
    assert discover([str(tmp_path / "nope")]).notes


def runs_of(root):
    found = discover([str(root)])
    return {os.path.relpath(run_dir, root): sorted(os.path.relpath(p, root) for p in files) for run_dir, files in found.runs.items()}


def test_a_log_teed_beside_its_run_directory_belongs_to_that_run(tmp_path):
    touch(tmp_path / "dpo_live/checkpoint-5/trainer_state.json")
    touch(tmp_path / "dpo_live.log")
    touch(tmp_path / "sft/train.log")
    touch(tmp_path / "sft.out")
    touch(tmp_path / "grpo/runs/Nov26_vm/events.out.tfevents.1.vm")
    touch(tmp_path / "grpo.txt")  # `python train.py > grpo.txt`
    touch(tmp_path / "notes.txt")  # not beside a run of that name: not a log
    assert runs_of(tmp_path) == {
        "dpo_live": ["dpo_live.log", "dpo_live/checkpoint-5/trainer_state.json"],
        "grpo": ["grpo.txt", "grpo/runs/Nov26_vm/events.out.tfevents.1.vm"],
        "sft": ["sft.out", "sft/train.log"],
    }


def test_a_log_among_runs_is_a_run_named_after_the_file_never_after_its_folder(tmp_path):
    touch(tmp_path / "exp/ptt/metrics.jsonl")
    touch(tmp_path / "nohup.out")
    touch(tmp_path / "sweep/a/train.log")
    touch(tmp_path / "sweep/b.log")
    assert runs_of(tmp_path) == {
        "exp": ["exp/ptt/metrics.jsonl"],
        "nohup": ["nohup.out"],
        "sweep/a": ["sweep/a/train.log"],
        "sweep/b": ["sweep/b.log"],
    }


def test_logs_of_a_run_directory_or_a_folder_of_logs_stay_with_it(tmp_path):
    touch(tmp_path / "exp/train.log")
    touch(tmp_path / "exp/runs/Nov26_vm/events.out.tfevents.1.vm")
    touch(tmp_path / "job/slurm-7.out")
    touch(tmp_path / "job/slurm-7.err")
    assert runs_of(tmp_path) == {
        "exp": ["exp/runs/Nov26_vm/events.out.tfevents.1.vm", "exp/train.log"],
        "job": ["job/slurm-7.err", "job/slurm-7.out"],
    }
    assert runs_of(tmp_path / "exp") == {".": ["runs/Nov26_vm/events.out.tfevents.1.vm", "train.log"]}
