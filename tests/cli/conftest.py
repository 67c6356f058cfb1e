"""Shared set-up of the command-line tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _cli_one_thread(one_thread):
    """Every command-line test runs on one torch thread (``one_thread`` in tests/conftest.py)."""
    yield
