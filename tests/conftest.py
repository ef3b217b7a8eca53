"""Shared fixtures. One Ray instance per test session: `ray.init` costs seconds on 2 cores."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALFOOTAGE = REPO_ROOT.parent / "shared" / "realfootage"

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The project MLflow store (pipeline/mlflow_store.py) of the tests: a temporary folder, never ./runs of the checkout.
os.environ.setdefault("WORLDLOOM_RUNS", tempfile.mkdtemp(prefix="worldloom-test-runs-"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def realfootage() -> Path:
    """The shared real videos; tests that need them skip when the folder is absent."""
    if not REALFOOTAGE.is_dir():
        pytest.skip(f"{REALFOOTAGE} is absent")
    return REALFOOTAGE


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance shared by every test that needs Ray.

    `address="local"` always starts this session's own instance instead of joining a Ray that
    happens to run on the machine. Four logical CPUs on a 2-core machine, so that two training workers and a data stage can
    be scheduled at once (see docs/architecture.md, "Ray on small machines").
    """
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    # Shut down at session end only; tests must not call ray.shutdown() themselves.
    ray.shutdown()
