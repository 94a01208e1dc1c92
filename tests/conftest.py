"""Shared test fixtures: paths into the repository's own test and demo data."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
DEMO = REPO / "resources" / "demo"


@pytest.fixture
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture
def demo_dir() -> Path:
    return DEMO
