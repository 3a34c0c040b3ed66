"""Fixtures for the routing tests: where the (unshipped) data folder is, if anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> Path | None:
    """HOTLINE_DATA_DIR, else ../shared/data beside the checkout; None when neither holds teddy2020/."""
    env = os.environ.get("HOTLINE_DATA_DIR")
    candidate = Path(env) if env else REPO.parent / "shared" / "data"
    return candidate if (candidate / "teddy2020" / "labelled_train.csv").is_file() else None


@pytest.fixture(scope="session")
def teddy_dir() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip(
            "needs the teddy2020 data (HOTLINE_DATA_DIR or ../shared/data with teddy2020/labelled_train.csv); "
            "message texts are not shipped with the repository"
        )
    return d
