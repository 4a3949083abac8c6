"""Fixtures of the evaluation tests: the real data folder (skip when absent) and moto."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.evaluation.datasets import default_data_dir
from tests.unit.conftest import aws  # noqa: F401  (moto with the template's tables, reused)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/datasets, or a skip with the reason when it is absent (a fresh clone)."""
    folder = default_data_dir()
    if not folder.is_dir():
        pytest.skip(
            f"real data sets absent: {folder} does not exist (they are not part of the repository; "
            "see ../shared/EVALUATION.md)"
        )
    return folder
