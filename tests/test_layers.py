"""The layers: core (files -> runs) below rules (diagnosis) below the application (session, summary,
headless, report, look, demo, TUI). Imports point down only, nothing below the TUI needs Textual, and
reading tracker files needs none of the trackers' own packages."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlhf_tui"
HEAVY = ("torch", "transformers", "trl", "wandb", "trackio", "mlflow")
APPLICATION = (
    "rlhf_tui.session",
    "rlhf_tui.follow",
    "rlhf_tui.events",
    "rlhf_tui.notify",
    "rlhf_tui.watcher",
    "rlhf_tui.watch_state",
    "rlhf_tui.serve",
    "rlhf_tui.summary",
    "rlhf_tui.headless",
    "rlhf_tui.report",
    "rlhf_tui.look",
    "rlhf_tui.demo",
    "rlhf_tui.simulate",
    "rlhf_tui.cli",
    "rlhf_tui.integrations",
    "rlhf_tui.ui",
)
# layer -> what its modules must not import
FORBIDDEN = {
    "core": ("rlhf_tui.rules", *APPLICATION, "textual", "rich", *HEAVY),
    "rules": (*APPLICATION, "textual", "rich", *HEAVY),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the project imports by absolute name"
            if node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def offenders(layer: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return found


def test_the_core_imports_neither_diagnosis_nor_the_application_nor_a_ui_library():
    assert offenders("core") == []


def test_diagnosis_imports_the_core_only():
    assert offenders("rules") == []


def test_nothing_outside_the_tui_imports_textual():
    outside = [p for p in PACKAGE.rglob("*.py") if "ui" not in p.relative_to(PACKAGE).parts]
    found = [
        f"{path.relative_to(PACKAGE.parent)} imports {name}"
        for path in outside
        for name in imported_modules(path)
        if name == "textual" or name.startswith("textual.")
    ]
    assert found == []


def test_headless_paths_load_without_textual_and_optional_libraries_load_only_when_used():
    code = (
        "import sys, rlhf_tui.cli, rlhf_tui.headless, rlhf_tui.session, rlhf_tui.report, rlhf_tui.watcher, rlhf_tui.serve;"
        "bad = [m for m in sys.modules if m.split('.')[0] in"
        " ('textual', 'torch', 'transformers', 'wandb', 'trackio', 'mlflow', 'apprise', 'textual_serve')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
