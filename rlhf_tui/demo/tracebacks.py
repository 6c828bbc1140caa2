"""Tracebacks a dying simulated run prints."""

from __future__ import annotations

def cuda_oom_traceback(script: str, frames: str) -> str:
    """A CUDA OOM in `trainer.train()` called from `script`'s main(); `frames` are the trainer's own
    frames between the Trainer loop and the model forward whose allocation failed."""
    site = "/opt/conda/lib/python3.11/site-packages"
    return (
        "Traceback (most recent call last):\n"
        f'  File "{script}", line 142, in <module>\n'
        "    main()\n"
        f'  File "{script}", line 137, in main\n'
        "    trainer.train()\n"
        f'  File "{site}/transformers/trainer.py", line 1576, in train\n'
        "    return inner_training_loop(\n"
        "           ^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{site}/transformers/trainer.py", line 1660, in _inner_training_loop\n'
        "    self._run_epoch(\n"
        f'  File "{site}/transformers/trainer.py", line 1931, in _run_epoch\n'
        "    tr_loss_step = self.training_step(model, inputs, num_items_in_batch)\n"
        "                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        + frames.format(site=site)
        + f'  File "{site}/torch/nn/modules/module.py", line 1775, in _wrapped_call_impl\n'
        "    return self._call_impl(*args, **kwargs)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{site}/torch/nn/modules/module.py", line 1786, in _call_impl\n'
        "    return forward_call(*args, **kwargs)\n"
        "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{site}/transformers/models/qwen2/modeling_qwen2.py", line 455, in forward\n'
        "    logits = self.lm_head(hidden_states[:, slice_indices, :])\n"
        "             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.64 GiB. GPU 0 has a total "
        "capacity of 79.19 GiB of which 3.02 GiB is free. Including non-PyTorch memory, this process has "
        "76.16 GiB memory in use. Of the allocated memory 70.87 GiB is allocated by PyTorch, and 4.61 GiB "
        "is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
        "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)\n"
    )


KTO_FRAMES = (
    '  File "{site}/transformers/trainer.py", line 2675, in training_step\n'
    "    loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)\n"
    "           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/kto_trainer.py", line 1451, in compute_loss\n'
    "    loss, metrics = self.get_batch_loss_metrics(model, inputs)\n"
    "                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/kto_trainer.py", line 1372, in get_batch_loss_metrics\n'
    "    forward_output = self.forward(model, batch)\n"
    "                     ^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
    '  File "{site}/trl/trainer/kto_trainer.py", line 1144, in forward\n'
    '    outputs = model(batch["completion_input_ids"], attention_mask=batch["completion_attention_mask"])\n'
    "              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)


