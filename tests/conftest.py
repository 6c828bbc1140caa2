import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REAL_RUNS = FIXTURES / "real_runs"


@pytest.fixture
def real_runs(tmp_path: Path) -> Path:
    """A writable copy of the real TRL run directories."""
    target = tmp_path / "real_runs"
    shutil.copytree(REAL_RUNS, target)
    return target
