"""Simulated runs written to disk the way real trainers write them: `rlhf-top --demo` and `sample_runs/`.

The metric streams come from `rlhf_tui.simulate`; this package only writes them, in the formats rlhf-top
follows in real run directories (shapes copied from the real TRL runs in `tests/fixtures/real_runs`):

- `train.log`: what `python train.py 2>&1 | tee train.log` captures of a transformers 5.x run: log
  dicts with string values printed by `tqdm.write` between `\\r` redraws of the progress bar, and the
  traceback when the run dies;
- Post-Training Toolkit's `DiagnosticsCallback` files: `metrics.jsonl` with PTT's renamed keys, the
  run-average loss row and footer at the end, `run_metadata*.json`, `postmortem.json` on a crash;
- rlhf-top's own `RunLogger` files: the same layout with raw TRL keys and `"writer": "rlhf-top"`;
- `checkpoint-N/trainer_state.json` and the model card TRL writes at every save.

Every line is appended and flushed on its own, as a live trainer does, and documents are replaced in
one step, so the ordinary readers follow these runs by the same code paths as real ones.
"""

from rlhf_tui.demo.live import LiveDemo

__all__ = ["LiveDemo"]
