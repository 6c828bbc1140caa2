"""The config view, driven with keys: one run's configuration, and what differs between selected runs."""

import json
from pathlib import Path

from test_ui_flows import dpo_steps, make_app, table, write_ptt_run
from textual.widgets import DataTable, Static

from rlhf_tui.core import runlog
from rlhf_tui.ui.screens.config_view import ConfigScreen
from rlhf_tui.ui.screens.run_view import RunScreen
from tui import screen_text, wait_for

SHARED = {"learning_rate": 1e-05, "bf16": True, "per_device_train_batch_size": 4}


def run_with_config(root: Path, name: str, training_args: dict | None) -> Path:
    directory = root / name
    write_ptt_run(directory, "dpo", dpo_steps(5))
    if training_args is not None:
        metadata = {"trainer_type": "dpo", "training_args": training_args}
        (directory / runlog.METADATA_FILE).write_text(json.dumps(metadata))
    return directory


def config_drawn(app) -> bool:
    return isinstance(app.screen, ConfigScreen) and app.screen.drawn


def rows(app) -> list[list[str]]:
    grid = app.screen.query_one(DataTable)
    return [[cell.plain for cell in grid.get_row_at(index)] for index in range(grid.row_count)]


def columns(app) -> list[str]:
    return [column.label.plain for column in app.screen.query_one(DataTable).ordered_columns]


def title(app) -> str:
    return app.screen.query_one("#config-title", Static).render().plain


async def open_sweep(pilot, app, count: int) -> None:
    await wait_for(pilot, lambda: app.loaded and len(table(app).order) == count)
    await pilot.press("s")  # by name


async def test_one_run_shows_every_key_of_its_configuration(tmp_path):
    run_with_config(tmp_path, "beta_0.1", {**SHARED, "beta": 0.1, "output_dir": "/ckpt/beta_0.1"})
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await open_sweep(pilot, app, 1)
        await pilot.press("i")
        await wait_for(pilot, lambda: config_drawn(app))
        assert columns(app) == ["key", "beta_0.1"]
        assert rows(app) == [
            ["beta", "0.1"],
            ["bf16", "True"],
            ["learning_rate", "1e-05"],
            ["output_dir", "/ckpt/beta_0.1"],
            ["per_device_train_batch_size", "4"],
        ]
        assert "Config of beta_0.1  5 keys" in title(app)
        await pilot.press("escape")
        assert app.screen is app.home


async def test_selected_runs_show_only_what_differs_side_by_side(tmp_path):
    run_with_config(tmp_path, "a_beta_0.1", {**SHARED, "beta": 0.1, "seed": 1})
    run_with_config(tmp_path, "b_beta_0.5", {**SHARED, "beta": 0.5, "seed": 2, "adapter": "lora", "warmup_steps": 10})
    run_with_config(tmp_path, "c_other", {**SHARED, "beta": 9.0})
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await open_sweep(pilot, app, 3)
        await pilot.press("g", "space", "j", "space", "i")
        await wait_for(pilot, lambda: config_drawn(app))
        assert columns(app) == ["key", "a_beta_0.1", "b_beta_0.5"]
        # values that differ first; keys only one run has after them
        assert rows(app) == [
            ["beta", "0.1", "0.5"], ["seed", "1", "2"], ["adapter", "—", "lora"], ["warmup_steps", "—", "10"]
        ]
        assert "4 of 7 keys differ (2 only in some runs, listed last)" in title(app)

        await pilot.press("d")  # every key, the differing ones marked
        await wait_for(pilot, lambda: config_drawn(app) and len(rows(app)) == 7)
        assert [row[0] for row in rows(app)] == [
            "beta", "bf16", "learning_rate", "per_device_train_batch_size", "seed", "adapter", "warmup_steps"
        ]
        assert rows(app)[2] == ["learning_rate", "1e-05", "1e-05"]
        first_cell = app.screen.query_one(DataTable).get_row_at(0)[0]
        assert "bold" in str(first_cell.style)

        await pilot.press("slash", *"rate", "enter")
        assert rows(app) == [["learning_rate", "1e-05", "1e-05"]]
        assert "(1 shown)" in title(app)


async def test_the_run_view_opens_the_config_of_the_runs_it_overlays(tmp_path):
    run_with_config(tmp_path, "a", {**SHARED, "beta": 0.1})
    run_with_config(tmp_path, "b", {**SHARED, "beta": 0.2})
    app = make_app([tmp_path])
    async with app.run_test(size=(120, 30)) as pilot:
        await open_sweep(pilot, app, 2)
        await pilot.press("g", "space", "j", "space", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("i")
        await wait_for(pilot, lambda: config_drawn(app))
        assert rows(app) == [["beta", "0.1", "0.2"]]
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)


async def test_a_run_without_configuration_says_so(tmp_path):
    run_with_config(tmp_path, "a", {**SHARED, "beta": 0.1})
    run_with_config(tmp_path, "b_bare", None)
    app = make_app([tmp_path])
    async with app.run_test(size=(160, 30)) as pilot:
        await open_sweep(pilot, app, 2)
        await pilot.press("g", "space", "j", "space", "i")
        await wait_for(pilot, lambda: config_drawn(app))
        assert "no configuration recorded: b_bare" in title(app)
        assert rows(app)[0] == ["beta", "0.1", "—"]


async def test_hostile_config_text_is_shown_as_data(tmp_path):
    hostile = "[/x] [bold red]loud[/] \x1b[31mred\x1b]0;title\x07 \u202eevil"
    run_with_config(tmp_path, "run", {"run_name": hostile, "[red]key": 1})
    app = make_app([tmp_path])
    async with app.run_test(size=(160, 30)) as pilot:
        await open_sweep(pilot, app, 1)
        await pilot.press("i")
        await wait_for(pilot, lambda: config_drawn(app))
        shown = screen_text(app)
        assert "[red]key" in shown
        assert "[/x] [bold red]loud[/] red evil" in shown


async def test_configuration_arriving_later_appears_in_an_open_view(tmp_path):
    directory = run_with_config(tmp_path, "run", None)
    app = make_app([tmp_path], poll=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        await open_sweep(pilot, app, 1)
        await pilot.press("i")
        await wait_for(pilot, lambda: config_drawn(app))
        assert rows(app) == []
        assert "no configuration recorded: run" in title(app)
        metadata = {"trainer_type": "dpo", "training_args": {"beta": 0.3}}
        (directory / runlog.METADATA_FILE).write_text(json.dumps(metadata))
        await wait_for(pilot, lambda: config_drawn(app) and rows(app) == [["beta", "0.3"]], timeout=15)
