from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clients"
SILICON = Path(__file__).resolve().parents[3] / "shared" / "data" / "e2e_train_silicon.csv"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def silicon_csv() -> Path:
    if not SILICON.is_file():
        pytest.skip(f"training data not found at {SILICON}")
    return SILICON
