"""Shared fixtures: where the real public sample data lives, and which backend is under test."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

import analyzer.matching

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (override with MAILFLOW_SHARED_DATA)."""
    override = os.environ.get("MAILFLOW_SHARED_DATA")
    path = Path(override) if override else REPO.parent / "shared" / "data"
    if not (path / "MANIFEST.md").is_file():
        # Not a skip: these files are the project's test data, and a run without them proves nothing.
        raise RuntimeError(f"shared sample data not found at {path}; set MAILFLOW_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()


def pytest_configure(config: pytest.Config) -> None:
    # the CLI keeps per-day partials in the user's cache by default: tests use their own,
    # removed at exit, so a run neither reads nor leaves anything in ~/.cache
    if "MAILFLOW_CACHE_DIR" not in os.environ:
        folder = tempfile.mkdtemp(prefix="mailflow-test-cache-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["MAILFLOW_CACHE_DIR"] = folder


def pytest_report_header(config: pytest.Config) -> str:
    return f"mailflow-analyzer matching backend: {analyzer.matching.BACKEND} ({analyzer.matching.__file__})"
