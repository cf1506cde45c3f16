"""Shared fixtures. Tests never need ../shared or any hardware."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.election import LARGE_ELECTION, SAMPLE_ELECTION, Election, load_election


@pytest.fixture(scope="session")
def election() -> Election:
    return load_election(SAMPLE_ELECTION)


@pytest.fixture(scope="session")
def large_election() -> Election:
    return load_election(LARGE_ELECTION)


@pytest.fixture
def tmpfs_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory on tmpfs when the machine has one: store tests are about bytes and transactions, not
    about the disk's fsync latency (a cast is ~6 fsyncs), which makes them slow and their timing erratic."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        where = Path(tempfile.mkdtemp(prefix="ballotbox-store-", dir=shm))
        yield where
        shutil.rmtree(where, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("store")


@pytest.fixture(autouse=True)
def _no_host_tpm(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`provision --tpm auto` never seals a test's key to the TPM of the machine running the tests: tests
    that use a TPM start their own (tests/test_trust_tpm.py)."""
    import firmware.trust.tpm

    monkeypatch.setattr(firmware.trust.tpm, "TPM_DEVICE", tmp_path_factory.getbasetemp() / "no-host-tpmrm0")
