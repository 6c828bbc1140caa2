import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REAL_RUNS = FIXTURES / "real_runs"
TRACKER_RUNS = FIXTURES / "trackers" / "launch"


def require(module: str) -> ModuleType:
    """Import an optional library a test needs, or skip the test saying which one is missing.

    CI installs every extra (`.ci/run`), so there (`CI=true`) a missing library is a failure, not a
    skip: a test that silently stopped running would look like a test that passes.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        reason = f"needs {module} ({error}); install the extras: pip install -e '.[test,trl,tensorboard,trackers]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and a test {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


@pytest.fixture
def real_runs(tmp_path: Path) -> Path:
    """A writable copy of the real TRL run directories."""
    target = tmp_path / "real_runs"
    shutil.copytree(REAL_RUNS, target)
    return target


@pytest.fixture
def tracker_runs(tmp_path: Path) -> Path:
    """A writable copy of the launch directory where real TRL runs logged to W&B, Trackio and MLflow."""
    target = tmp_path / "launch"
    shutil.copytree(TRACKER_RUNS, target)
    return target
