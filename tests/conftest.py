"""Shared fixtures. Tests never need ../shared or any hardware."""

from __future__ import annotations

import pytest

from config.election import LARGE_ELECTION, SAMPLE_ELECTION, Election, load_election


@pytest.fixture(scope="session")
def election() -> Election:
    return load_election(SAMPLE_ELECTION)


@pytest.fixture(scope="session")
def large_election() -> Election:
    return load_election(LARGE_ELECTION)
