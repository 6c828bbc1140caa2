import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

import needs
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


@pytest.fixture
def sshd(tmp_path: Path):
    """A real OpenSSH server on a loopback port, serving this machine's files (tests/remote_servers.py)."""
    from remote_servers import Sshd, sshd_path

    needs.module("sshfs", "pip install -e '.[ssh]'")
    if sshd_path() is None:
        needs.command("sshd", "apt-get install openssh-server")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        needs.command("/run/sshd (sshd's privilege separation directory)", "mkdir -p /run/sshd, as .ci/run does")
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on a loopback port, checking every request's signature; no AWS settings of this machine."""
    from remote_servers import S3Server, no_aws_environment

    needs.module("s3fs", "pip install -e '.[s3]'")
    needs.module("moto.server", "pip install -e '.[test]'")
    no_aws_environment(monkeypatch)
    server = S3Server()
    server.start()
    yield server
    server.stop()
