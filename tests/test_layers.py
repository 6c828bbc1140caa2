"""The core never imports Textual: the headless paths must work without the TUI layer, and reading
tracker files needs none of the trackers' own packages."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rlhf_tui"
CORE = [
    *sorted((PACKAGE / "core").rglob("*.py")),
    *sorted((PACKAGE / "rules").rglob("*.py")),
    PACKAGE / "report.py",
    PACKAGE / "headless.py",
    PACKAGE / "simulate.py",
]
FORBIDDEN = ("textual", "rlhf_tui.ui", "torch", "transformers", "trl", "wandb", "trackio", "mlflow")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_modules_do_not_import_the_tui_or_heavy_libraries():
    offenders = []
    for path in CORE:
        if not path.exists():
            continue
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offenders == []


def test_headless_paths_load_without_textual():
    code = (
        "import sys, rlhf_tui.cli, rlhf_tui.headless, rlhf_tui.core.session, rlhf_tui.report;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'torch', 'transformers', 'wandb', 'trackio', 'mlflow')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
