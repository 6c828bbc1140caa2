import shutil
from pathlib import Path

import pytest
from hypothesis import settings

from search import IN_CI, examples

settings.register_profile(
    "rlhf-top",
    derandomize=IN_CI,
    database=None if IN_CI else settings.default.database,
    max_examples=examples(100),
    deadline=None,  # a loaded CI machine must not turn a slow example into a failure
    print_blob=True,
)
settings.load_profile("rlhf-top")

FIXTURES = Path(__file__).parent / "fixtures"
REAL_RUNS = FIXTURES / "real_runs"
TRACKER_RUNS = FIXTURES / "trackers" / "launch"


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
