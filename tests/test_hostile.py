"""Hostile input and safety: what runs can throw at rlhf-top, through every headless path and the TUI.

`hostile_tree` builds the fixture tree in a temporary directory (nothing big is committed): run
names and metric keys full of Rich/Textual markup and Markdown, names with terminal escapes, a
newline and bytes that are not UTF-8, tracebacks with ANSI escapes, control characters, Markdown
fences and HTML, deeply nested JSON and YAML. Other tests make a 100 MB line, rule files with
`!!python/object` tags, symlinks out of the roots and in loops, and export paths that traverse or
point at existing files. Expected behaviour (also the README's "Robustness" section):

- untrusted text (names, keys, tracebacks, notes) is data: never parsed as markup, never written to
  the terminal as escape or control characters, never able to add structure to a Markdown report;
- bad input becomes a note on its run, never an exception, and other runs keep updating;
- a line over 1 MiB is skipped with a note, without ever being held in memory whole;
- rule files are read with `yaml.safe_load`: a Python tag is a load error naming the file;
- a symlink loop is walked once; a symlink back up to an ancestor of a root (`/`, `..`) is not
  followed, so a scan never wanders through the whole file system;
- a report is written only to a new file (or, with --force / after asking, replacing a file), never
  through a symlink and never inside a run directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from rlhf_tui.core import runlog
from rlhf_tui.core.monitor import Monitor
from rlhf_tui.report import write_new_file
from rlhf_tui.rules import load_rules
from rlhf_tui.ui.live import LoopSettings
from rlhf_tui.ui.screens.run_view import RunScreen
from rlhf_tui.ui.app import RlhfTop
from rlhf_tui.ui.widgets.panes import CrashPane
from tui import screen_text, wait_for
from rlhf_tui.ui.widgets.runs_table import RunsTable

HEADER = runlog.line(runlog.header("dpo", "run", "2026-11-26T01:00:00+00:00"))
MARKUP_NAMES = ["run[lr=1e-5]", "[/bold]", "**x**", "<b>html</b>", "`rm -rf ~`", "[link=https:"]
CONTROL_NAMES = ["ansi\x1b[31mred\x1b[0m", "line\nbreak", "tab\there"]
NOT_UTF8_NAME = b"bad\xffname"
HOSTILE_KEYS = {
    "dpo_loss": 0.69,
    "[bold red]evil[/]": 1.0,
    "**x**": 2.0,
    "[/bold]": 3.0,
    "a\x1b[31mb": 4.0,
    "<script>alert(1)</script>": 5.0,
    "`code`": 6.0,
    "| pipe |": 7.0,
}
HOSTILE_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 1, in <module>\n'
    "    \x1b[31m[bold]x[/bold]\x1b[0m\x07\x08\x00\x0c\x1b]0;owned title\x07\n"
    '  File "x.py", line 2, in f\n'
    "RuntimeError: \x1b[2J[blink]boom[/blink] **bold** `tick` \x07\n"
    "```\n"
    "# pwned heading\n"
    "<script>alert(1)</script>\n"
)
DEEP = 5000
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls other than \t and \n


def record(step: int, metrics: dict) -> str:
    return runlog.line(runlog.step(step, "2026-11-26T01:00:00.000000+00:00", metrics))


def write(path: bytes | str, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())


def build_hostile_tree(root: Path) -> None:
    """names/: markup and control characters; encoding/: a name that is not UTF-8; crashes/:
    hostile tracebacks in a postmortem and in a console log; nested/: deeply nested documents."""
    for name in MARKUP_NAMES + CONTROL_NAMES:
        write(os.path.join(root, "names", name, "metrics.jsonl"), HEADER + "".join(record(s, HOSTILE_KEYS) for s in range(1, 6)))
    write(os.path.join(bytes(root), b"encoding", NOT_UTF8_NAME, b"metrics.jsonl"), HEADER + record(1, {"dpo_loss": 0.5}))
    crash = root / "crashes" / "crash[red]"
    write(crash / "ptt" / "metrics.jsonl", HEADER + "".join(record(s, {"dpo_loss": 0.69}) for s in range(1, 4)))
    write(crash / "ptt" / "postmortem.json", json.dumps({"exit_reason": "exception", "traceback": HOSTILE_TRACEBACK, "last_step": 3}))
    write(root / "crashes" / "crash_log" / "train.log", "{'loss': '0.69', 'epoch': '0.1'}\n" + HOSTILE_TRACEBACK)
    nested = root / "nested"
    deep_list = "[" * DEEP + "]" * DEEP
    write(nested / "ptt" / "metrics.jsonl", HEADER + record(1, {"dpo_loss": 0.5})[:-3] + ', "deep": ' + deep_list + "}}\n" + record(2, {"dpo_loss": 0.4}))
    write(nested / "checkpoint-1" / "trainer_state.json", '{"a":' * DEEP + "1" + "}" * DEEP)
    write(nested / "ptt" / "run_metadata.json", deep_list)
    write(nested / "README.md", "---\ntags: " + deep_list + "\n---\n")


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    build_hostile_tree(root)
    return root


def rlhf_top(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed CLI, with stdout strictly UTF-8 as on a UTF-8 terminal."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rlhf_tui", *args], capture_output=True, env=env, cwd=cwd, timeout=120
    )


def prose(markdown: str) -> list[str]:
    """The lines of a Markdown document outside fenced code blocks, with code spans taken out."""
    return [re.sub(r"(`+).*?\1", "", line) for line in outside_fences(markdown)]


def outside_fences(markdown: str) -> list[str]:
    """The lines of a Markdown document that are not inside a fenced code block (CommonMark rules)."""
    lines, fence = [], None
    for line in markdown.split("\n"):
        match = re.match(r" {0,3}(`{3,}|~{3,})(.*)$", line)
        if fence is None:
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence = match.group(1)
            else:
                lines.append(line)
        elif match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not match.group(2).strip():
            fence = None
    return lines


# --- headless: --once, --json, report -------------------------------------------------------


def test_once_survives_run_names_that_are_not_utf8(hostile_tree):
    result = rlhf_top("--once", "--color-system", "none", str(hostile_tree / "encoding"))
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")[-2000:]
    assert result.returncode in (0, 1)
    assert b"bad" in result.stdout


def test_once_shows_markup_as_text_and_writes_no_escapes(hostile_tree):
    result = rlhf_top("--once", "--color-system", "none", str(hostile_tree / "names"), str(hostile_tree / "crashes"))
    out = result.stdout.decode(errors="replace")
    for name in MARKUP_NAMES:
        assert name in out, name
    assert not CONTROL.findall(out), sorted(set(CONTROL.findall(out)))
    assert not any(line.startswith("break") for line in out.splitlines()), "a newline in a name made a fake row"


def test_json_is_valid_and_holds_names_exactly(hostile_tree):
    result = rlhf_top("--json", str(hostile_tree))
    document = json.loads(result.stdout)
    rows = {row["name"]: row for row in document["runs"]}
    expected = {f"names/{name}" for name in MARKUP_NAMES + CONTROL_NAMES}
    expected |= {"encoding/bad\udcffname", "crashes/crash[red]", "crashes/crash_log", "nested"}
    assert set(rows) == expected
    crashed = rows["crashes/crash[red]"]
    assert crashed["lifecycle"] == "crashed"
    assert crashed["status"].startswith("Crashed"), crashed


def test_report_keeps_hostile_traceback_inside_its_fence(hostile_tree, tmp_path):
    result = rlhf_top("report", str(hostile_tree / "crashes" / "crash[red]"))
    assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
    text = result.stdout.decode()
    assert "boom" in text
    assert not CONTROL.findall(text), sorted(set(CONTROL.findall(text)))
    lines = prose(text)
    assert "# pwned heading" not in lines
    assert not any("<script>" in line for line in lines)
    assert not any(line.startswith("# ") for line in lines)
    as_json = rlhf_top("report", "--json", str(hostile_tree / "crashes" / "crash[red]"))
    assert json.loads(as_json.stdout)


def test_report_on_a_run_with_markup_keys(hostile_tree):
    result = rlhf_top("report", str(hostile_tree / "names" / "run[lr=1e-5]"))
    assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
    assert "run[lr=1e-5]" in result.stdout.decode()
    assert not any("<script>" in line for line in prose(result.stdout.decode()))


def test_deep_nesting_is_a_note_not_a_reader_failure(hostile_tree):
    monitor = Monitor([str(hostile_tree / "nested")])
    monitor.scan()
    monitor.catch_up()
    (run,) = monitor.runs.values()
    assert run.data["ptt"].series["dpo_loss"].steps.tolist() == [2]
    notes = list(run.notes)
    assert sum("not valid JSON" in note for note in notes) == 3, notes
    assert not [note for note in notes if "reader error" in note], notes


# --- a 100 MB line ---------------------------------------------------------------------------

HUGE = 100 * 2**20


def test_a_100_mb_line_is_skipped_without_holding_it(tmp_path):
    run = tmp_path / "runs" / "huge"
    with open(write_path(run / "metrics.jsonl"), "w") as handle:
        handle.write(HEADER + record(1, {"dpo_loss": 0.7}))
        handle.write('{"step": 2, "junk": "' + "x" * HUGE + '"}\n')
        handle.write(record(3, {"dpo_loss": 0.5}))
    with open(write_path(tmp_path / "runs" / "huge_log" / "train.log"), "w") as handle:
        handle.write("{'loss': '0.7', 'epoch': '0.1'}\n" + "y" * HUGE + "\n{'loss': '0.5', 'epoch': '0.2'}\n")
    monitor = Monitor([str(tmp_path / "runs")])
    monitor.scan()
    tracemalloc.start()
    try:
        monitor.catch_up()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    metrics, log = monitor.runs[str(run)], monitor.runs[str(tmp_path / "runs" / "huge_log")]
    assert metrics.data["ptt"].series["dpo_loss"].values.tolist() == [0.7, 0.5]
    assert log.data["console"].series["loss"].values.tolist() == [0.7, 0.5]
    assert [sum("1 MiB" in note for note in r.notes) for r in (metrics, log)] == [1, 1]
    assert peak < HUGE / 2, f"peak {peak / 2**20:.0f} MiB"
    result = rlhf_top("--json", str(tmp_path / "runs"))
    assert sorted(row["step"] for row in json.loads(result.stdout)["runs"]) == [2, 3]


def write_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --- rule files ------------------------------------------------------------------------------

PYTHON_TAGS = """\
rules:
  - !!python/object/apply:os.system ["touch {marker}"]
override:
  dpo_loss_at_ln2: !!python/object/new:subprocess.Popen [["touch", "{marker}"]]
"""


def test_rule_files_with_python_tags_are_refused(tmp_path, hostile_tree):
    marker = tmp_path / "pwned"
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "evil.yaml").write_text(PYTHON_TAGS.format(marker=marker))
    rules, errors = load_rules(rules_dir)
    assert rules, "the built-in rules still load"
    assert len(errors) == 1 and "evil.yaml" in errors[0] and "python/object" in errors[0], errors
    result = rlhf_top("--json", "--rules", str(rules_dir), str(hostile_tree / "nested"))
    assert any("evil.yaml" in note for note in json.loads(result.stdout)["notes"])
    assert not marker.exists()


def test_a_deeply_nested_rule_condition_is_an_error_not_a_crash(tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    condition = "(" * DEEP + "loss" + ")" * DEEP + " > 1"
    (rules_dir / "deep.yaml").write_text(
        f"rules:\n  - id: deep\n    severity: low\n    title: t\n    when: '{condition}'\n    message: m\n"
    )
    rules, errors = load_rules(rules_dir)
    assert rules and len(errors) == 1 and "deep.yaml" in errors[0], errors


# --- symlinks --------------------------------------------------------------------------------


def test_symlinks_out_of_the_roots_and_in_loops(tmp_path):
    root = tmp_path / "runs"
    write(root / "a" / "metrics.jsonl", HEADER + record(1, {"dpo_loss": 0.5}))
    write(tmp_path / "elsewhere" / "linked" / "metrics.jsonl", HEADER + record(1, {"dpo_loss": 0.5}))
    write(tmp_path / "elsewhere" / "unrelated" / "metrics.jsonl", HEADER + record(1, {"dpo_loss": 0.5}))
    (root / "linked").symlink_to(tmp_path / "elsewhere" / "linked")  # a run kept on another disk
    (root / "a" / "loop").symlink_to(root)
    (root / "self").symlink_to(".")
    (root / "up").symlink_to("..")
    (root / "slash").symlink_to("/")
    monitor = Monitor([str(root)])
    monitor.scan()
    monitor.catch_up()
    real = sorted(os.path.realpath(path) for path in monitor.runs)
    assert real == sorted([str(root / "a"), str(tmp_path / "elsewhere" / "linked")])
    assert any("loop" in note or "self" in note for note in monitor.notes)


# --- exports ---------------------------------------------------------------------------------


def test_report_export_never_overwrites_nor_writes_through_links(hostile_tree, tmp_path):
    run = str(hostile_tree / "crashes" / "crash[red]")
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    decoy = tmp_path / "etc" / "passwd"
    write(decoy, "root:x:0:0\n")
    existing = tmp_path / "report.md"
    existing.write_text("keep me")
    (tmp_path / "dangling.md").symlink_to(tmp_path / "nowhere" / "created.md")
    (tmp_path / "link.md").symlink_to(decoy)
    for target in ("../../../etc/passwd", str(existing), str(tmp_path / "dangling.md"), str(tmp_path / "link.md")):
        result = rlhf_top("report", run, "-o", target, cwd=cwd)
        assert result.returncode == 2 and b"exists" in result.stderr, (target, result.stderr)
    missing = rlhf_top("report", run, "-o", str(tmp_path / "no" / "such" / "dir.md"))
    assert missing.returncode == 2 and b"does not exist" in missing.stderr
    assert decoy.read_text() == "root:x:0:0\n" and existing.read_text() == "keep me"
    assert not (tmp_path / "nowhere").exists()
    forced = rlhf_top("report", run, "-o", str(tmp_path / "link.md"), "--force")
    assert forced.returncode in (0, 1)
    assert decoy.read_text() == "root:x:0:0\n", "--force replaces the link, not the file it points to"
    assert not (tmp_path / "link.md").is_symlink()


def test_report_export_refuses_a_run_directory(tmp_path):
    run = tmp_path / "runs" / "r"
    write(run / "metrics.jsonl", HEADER + record(1, {"dpo_loss": 0.5}))
    before = sorted(os.listdir(run))
    result = rlhf_top("report", str(run), "-o", str(run / "report.md"))
    assert result.returncode == 2
    assert sorted(os.listdir(run)) == before


def test_write_new_file_refuses_existing_paths(tmp_path):
    existing = tmp_path / "x.md"
    existing.write_text("keep me")
    traversal = tmp_path / "a" / ".." / "x.md"
    (tmp_path / "a").mkdir()
    for path in (existing, traversal):
        with pytest.raises(FileExistsError):
            write_new_file(path, "new")
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "x.md"], "no temporary file left behind"


# --- the TUI ---------------------------------------------------------------------------------


async def test_tui_shows_hostile_names_keys_and_tracebacks_as_data(hostile_tree):
    roots = [str(hostile_tree / sub) for sub in ("names", "crashes", "encoding", "nested")]
    app = RlhfTop(LoopSettings(roots=roots, poll_seconds=0.2))
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.home.query_one(RunsTable)
        await wait_for(pilot, lambda: app.loaded and len(table.order) == len(MARKUP_NAMES + CONTROL_NAMES) + 4)
        await pilot.pause()
        shown = screen_text(app)
        for name in MARKUP_NAMES:
            assert name in shown, name
        assert not CONTROL.findall(shown.replace("\n", "")), sorted(set(CONTROL.findall(shown)))

        await pilot.press("slash", *"crash[red]", "enter")
        await wait_for(pilot, lambda: table.cursor_path and table.snapshots[table.cursor_path].name.endswith("crash[red]"))
        await pilot.pause()
        pane = app.home.query_one(CrashPane)
        assert pane.display and "[blink]boom[/blink]" in pane.traceback
        assert not CONTROL.findall(pane.traceback.replace("\n", ""))
        shown = screen_text(app)
        assert "[blink]boom[/blink]" in shown and "[bold]x[/bold]" in shown
        assert not CONTROL.findall(shown.replace("\n", ""))

        await pilot.press("escape", "slash", *"run[lr=1e-5]", "enter", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.drawn)
        await pilot.pause()
        shown = screen_text(app)
        for key in ("[bold red]evil[/]", "**x**", "[/bold]", "<script>alert(1)"):
            assert key in shown, key
        assert not CONTROL.findall(shown.replace("\n", ""))
