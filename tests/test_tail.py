import os

from hypothesis import given, settings
from hypothesis import strategies as st
from search import examples

from rlhf_tui.core.sources.jsonl import JsonlReader
from rlhf_tui.core.sources.lines import LineBuffer
from rlhf_tui.core.tail import FileTail, WholeFile


def write(path, data, mode="ab"):
    with open(path, mode) as handle:
        handle.write(data)


def test_tail_reads_only_appended_bytes(tmp_path):
    path = tmp_path / "log.jsonl"
    write(path, b"one\n")
    tail = FileTail(str(path))
    assert tail.read(1024).data == b"one\n"
    assert tail.read(1024).data == b""
    write(path, b"two\n")
    assert tail.read(1024).data == b"two\n"


def test_tail_respects_budget_and_reports_pending(tmp_path):
    path = tmp_path / "big.log"
    write(path, b"x" * 100)
    tail = FileTail(str(path))
    first = tail.read(30)
    assert len(first.data) == 30 and first.pending
    rest = b""
    while True:
        chunk = tail.read(30)
        rest += chunk.data
        if not chunk.pending:
            break
    assert len(first.data) + len(rest) == 100


def test_truncation_restarts_from_zero(tmp_path):
    path = tmp_path / "log"
    write(path, b"aaaa\nbbbb\n")
    tail = FileTail(str(path))
    tail.read(1024)
    write(path, b"cc\n", mode="wb")
    result = tail.read(1024)
    assert result.reset and result.data == b"cc\n"


def test_rotation_by_replacement_restarts(tmp_path):
    path = tmp_path / "log"
    write(path, b"old line\n")
    tail = FileTail(str(path))
    tail.read(1024)
    os.rename(path, tmp_path / "log.1")
    write(path, b"new line that is longer\n")
    result = tail.read(1024)
    assert result.reset and result.data == b"new line that is longer\n"


def test_missing_and_not_regular(tmp_path):
    tail = FileTail(str(tmp_path / "absent"))
    assert tail.read(10).missing
    (tmp_path / "dir").mkdir()
    assert FileTail(str(tmp_path / "dir")).read(10).error == "not a regular file"


def test_snapshot_only_returns_changes(tmp_path):
    path = tmp_path / "state.json"
    write(path, b"{}", mode="wb")
    snap = WholeFile(str(path))
    assert snap.read_if_changed().data == b"{}"
    assert snap.read_if_changed() is None
    write(path, b'{"a": 1}', mode="wb")
    assert snap.read_if_changed().data == b'{"a": 1}'


def test_line_buffer_holds_torn_line():
    buffer = LineBuffer()
    assert buffer.feed(b'{"step": 1}\n{"st') == [b'{"step": 1}']
    assert buffer.feed(b'ep": 2}\n') == [b'{"step": 2}']


def test_line_buffer_drops_huge_line_and_recovers():
    buffer = LineBuffer(max_line=100)
    assert buffer.feed(b"a" * 150) == []
    assert buffer.feed(b"b" * 150 + b"\nok\n") == [b"ok"]
    assert buffer.dropped == 1


STREAM = b"".join(
    b'{"step": %d, "loss": %s, "lr": 0.001}\n' % (i, b"NaN" if i % 7 == 0 else b"%.3f" % (1 / i))
    for i in range(1, 60)
) + b"not json\n"


def read_whole(stream):
    reader = JsonlReader()
    update = reader.feed(stream)
    return [(r.step, sorted(r.values.items())) for r in update.records], update.notes


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_of_the_stream_gives_the_same_records(cuts):
    """Appending the stream in any pieces, through the real tailer, yields exactly its records."""
    import tempfile

    expected_records, expected_notes = read_whole(STREAM)
    bounds = [0, *sorted(cuts), len(STREAM)]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "metrics.jsonl")
        open(path, "wb").close()
        tail = FileTail(path)
        reader = JsonlReader()
        records, notes = [], []
        for start, end in zip(bounds, bounds[1:]):
            write(path, STREAM[start:end])
            result = tail.read(7)
            while True:
                update = reader.feed(result.data)
                records += [(r.step, sorted(r.values.items())) for r in update.records]
                notes += update.notes
                if not result.pending:
                    break
                result = tail.read(7)
    def normal(pairs):
        return [(s, [(k, repr(v)) for k, v in vals]) for s, vals in pairs]

    assert normal(records) == normal(expected_records)
    assert notes == expected_notes
