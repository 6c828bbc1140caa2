from rlhf_tui.core.sources.jsonl import JsonlReader


def test_flat_lines_pass_values_on_and_time_is_taken_out():
    update = JsonlReader().feed(b'{"step": 1, "loss": 0.5, "name": "x", "time": 5}\n{"step": 2, "loss": 0.4}\n')
    assert [(r.step, r.time, r.values) for r in update.records] == [
        (1, 5.0, {"loss": 0.5, "name": "x"}),
        (2, None, {"loss": 0.4}),
    ]


def test_verl_file_logger_shape():
    update = JsonlReader().feed(b'{"step": 3, "data": {"actor/pg_loss": 0.1, "critic/score/mean": 0.7}}\n')
    assert update.records[0].values == {"actor/pg_loss": 0.1, "critic/score/mean": 0.7}


def test_a_dataset_is_not_a_metrics_log():
    reader = JsonlReader()
    update = reader.feed(b'{"prompt": "hi", "chosen": "a", "rejected": "b"}\n{"prompt": "x"}\n')
    assert reader.not_metrics and not update.records and not update.notes


def test_line_without_step_after_records_is_a_note():
    update = JsonlReader().feed(b'{"step": 1, "loss": 1}\n{"loss": 2}\n')
    assert len(update.records) == 1 and "no step" in update.notes[0]


def test_deeply_nested_json_is_a_note_not_a_crash():
    update = JsonlReader().feed(b"[" * 100000 + b"\n" + b'{"step": 1, "loss": 1}\n')
    assert len(update.records) == 1 and update.notes
